//! Routing rules: category × territory → the lead department and co-departments of a case.
//!
//! Territory first (先属地、后属主): the rule for the report's street beats the rule for its
//! district, which beats a city-wide rule; within one territory a rule for the report's category
//! beats a rule for any category. When no rule matches, the territory takes the case (属地兜底):
//! its community (or, outside every community, its street or district) handles it. Pure.

use serde::{Deserialize, Serialize};

/// Who handles a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Handler {
    /// handled locally by the community 社区 (or the territorial unit named)
    Territory(String),
    /// a department, e.g. 城市管理综合执法局
    Department(String),
}

/// One rule as stored: `category` and `territory` `None` mean "any".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRule {
    pub id: i64,
    pub category: Option<String>,
    /// a district (6 digits) or street (9 digits) code
    pub territory: Option<String>,
    /// `None`: handled by the community
    pub lead_department: Option<String>,
    pub co_departments: Vec<String>,
}

/// The territorial chain of a report, as located.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Territory {
    pub district: Option<(String, String)>,
    pub street: Option<(String, String)>,
    pub community: Option<(String, String)>,
}

/// What routing proposes, and why (shown to the dispatcher).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Routed {
    /// the rule that decided; `None` for the territorial fallback
    pub rule_id: Option<i64>,
    pub lead: Handler,
    pub co_departments: Vec<String>,
    /// the reason in English (names stay Chinese, as in the data)
    pub why: String,
    /// the same reason in Chinese, for the console's default language
    pub why_zh: String,
}

/// How specific a rule's territory is for this report: street 2, district 1, anywhere 0;
/// `None` when the rule is for another territory.
fn territory_rank(rule: &RoutingRule, t: &Territory) -> Option<u8> {
    match &rule.territory {
        None => Some(0),
        Some(code) => {
            if t.street.as_ref().is_some_and(|(c, _)| c == code) {
                Some(2)
            } else if t.district.as_ref().is_some_and(|(c, _)| c == code) {
                Some(1)
            } else {
                None
            }
        }
    }
}

/// The local unit that takes a case no rule names, and its name for the reason.
fn territorial_unit(t: &Territory) -> (String, String) {
    t.community
        .as_ref()
        .or(t.street.as_ref())
        .or(t.district.as_ref())
        .cloned()
        .unwrap_or_else(|| (String::new(), "属地".to_owned()))
}

/// Routes a report of `category` located in `t` by `rules`; see the module docs for the order.
/// Ties (two rules equally specific) go to the smaller rule id. `name` turns a category or
/// department code into the name the dispatcher reads in `why`.
pub fn route(
    rules: &[RoutingRule],
    category: &str,
    t: &Territory,
    name: &dyn Fn(&str) -> String,
) -> Routed {
    let best = rules
        .iter()
        .filter(|r| r.category.as_deref().is_none_or(|c| c == category))
        .filter_map(|r| Some((territory_rank(r, t)?, r.category.is_some(), r)))
        .max_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(b.2.id.cmp(&a.2.id)));
    let (unit_code, unit_name) = territorial_unit(t);
    let Some((rank, specific, rule)) = best else {
        return Routed {
            rule_id: None,
            lead: Handler::Territory(unit_code),
            co_departments: Vec::new(),
            why: format!(
                "no routing rule for {} here: the territory takes it (属地兜底, {unit_name})",
                name(category)
            ),
            why_zh: format!(
                "无适用派单规则：{}由属地兜底（{unit_name}）",
                name(category)
            ),
        };
    };
    let scope = match rank {
        2 => t
            .street
            .as_ref()
            .map(|(_, n)| n.clone())
            .unwrap_or_default(),
        1 => t
            .district
            .as_ref()
            .map(|(_, n)| n.clone())
            .unwrap_or_default(),
        _ => "全市".to_owned(),
    };
    let (what, what_zh) = if specific {
        (name(category), name(category))
    } else {
        ("any category".to_owned(), "各类事件".to_owned())
    };
    let lead = match &rule.lead_department {
        Some(d) => Handler::Department(d.clone()),
        None => Handler::Territory(unit_code),
    };
    let (who, who_zh) = match &lead {
        Handler::Department(d) => (name(d), format!("{}牵头", name(d))),
        Handler::Territory(_) => (
            format!("{unit_name} handles it locally"),
            format!("{unit_name}自行处置"),
        ),
    };
    Routed {
        rule_id: Some(rule.id),
        lead,
        co_departments: rule.co_departments.clone(),
        why: format!("rule #{} ({what} in {scope}): {who}", rule.id),
        why_zh: format!("规则 #{}（{what_zh} · {scope}）：{who_zh}", rule.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        id: i64,
        category: Option<&str>,
        territory: Option<&str>,
        lead: Option<&str>,
    ) -> RoutingRule {
        RoutingRule {
            id,
            category: category.map(str::to_owned),
            territory: territory.map(str::to_owned),
            lead_department: lead.map(str::to_owned),
            co_departments: vec![],
        }
    }

    fn route_codes(rules: &[RoutingRule], category: &str, t: &Territory) -> Routed {
        route(rules, category, t, &|c: &str| c.to_owned())
    }

    fn kangle() -> Territory {
        Territory {
            district: Some(("150302".into(), "海勃湾区".into())),
            street: Some(("150302001".into(), "新华街道".into())),
            community: Some(("150302001001".into(), "康乐社区".into())),
        }
    }

    #[test]
    fn the_street_rule_beats_the_district_and_the_city() {
        let rules = vec![
            rule(1, Some("oil_smoke"), None, Some("市场监督管理局")),
            rule(
                2,
                Some("oil_smoke"),
                Some("150302"),
                Some("城市管理综合执法局"),
            ),
            rule(3, Some("oil_smoke"), Some("150302001"), None),
            rule(4, Some("oil_smoke"), Some("150303"), Some("水务局")),
        ];
        let r = route_codes(&rules, "oil_smoke", &kangle());
        assert_eq!(r.rule_id, Some(3));
        assert_eq!(r.lead, Handler::Territory("150302001001".into()));
        assert!(
            r.why.contains("新华街道") && r.why.contains("康乐社区"),
            "{}",
            r.why
        );
        // In another street of the district, the district rule.
        let mut other = kangle();
        other.street = Some(("150302002".into(), "新华西街道".into()));
        let r = route_codes(&rules, "oil_smoke", &other);
        assert_eq!(r.lead, Handler::Department("城市管理综合执法局".into()));
    }

    #[test]
    fn a_category_rule_beats_an_any_category_rule_in_the_same_territory_only() {
        let rules = vec![
            rule(1, None, Some("150302001"), Some("社区网格站")),
            rule(
                2,
                Some("fire_lane_blocked"),
                Some("150302"),
                Some("消防救援大队"),
            ),
        ];
        // Territory first: the street's catch-all wins over the district's category rule.
        assert_eq!(
            route_codes(&rules, "fire_lane_blocked", &kangle()).rule_id,
            Some(1)
        );
        let rules = vec![
            rule(5, None, Some("150302"), Some("城市管理综合执法局")),
            rule(
                6,
                Some("fire_lane_blocked"),
                Some("150302"),
                Some("消防救援大队"),
            ),
        ];
        let r = route_codes(&rules, "fire_lane_blocked", &kangle());
        assert_eq!(
            (r.rule_id, r.lead),
            (Some(6), Handler::Department("消防救援大队".into()))
        );
    }

    #[test]
    fn without_a_rule_the_territory_takes_it() {
        let r = route_codes(
            &[rule(1, Some("oil_smoke"), None, Some("市场监督管理局"))],
            "wall_leak",
            &kangle(),
        );
        assert_eq!(r.rule_id, None);
        assert_eq!(r.lead, Handler::Territory("150302001001".into()));
        assert!(r.why.contains("属地兜底"), "{}", r.why);
        assert_eq!(r.why_zh, "无适用派单规则：wall_leak由属地兜底（康乐社区）");
        let outside = Territory {
            district: Some(("150304".into(), "乌达区".into())),
            ..Territory::default()
        };
        assert_eq!(
            route_codes(&[], "wall_leak", &outside).lead,
            Handler::Territory("150304".into())
        );
    }
}
