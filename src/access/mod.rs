//! Who may do what, in one place. Every `/api/v1` route has an entry in [`rule`]: the capability
//! it needs and the resource its path names. The HTTP layer asks [`Grant::permit`] before a
//! handler runs and passes the resulting [`Grant`] on, so list endpoints narrow to the caller's
//! region with [`Grant::narrow`] and case/report endpoints check [`Grant::sees`]. A route with no
//! entry is refused: a new endpoint is closed until someone decides who may call it.
//!
//! Scope is a region code, and "inside" is [`GridCode::is_within`]: the same hierarchy that
//! routes a report to its grid decides whether a street leader may see it.

pub mod credentials;
pub mod password;
pub mod throttle;

use crate::domain::case::Action;
use crate::domain::{GridCode, Level};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a user does, and therefore what they may see and change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    /// 综治中心/指挥调度: the whole city's cases
    Dispatcher,
    /// 街道党工委书记: one street
    StreetLeader,
    /// 社区党委书记: one community
    CommunityLeader,
    /// draws and redraws the grids of a region
    Planner,
    /// 网格员: files reports, sees the cases of their grid
    GridWorker,
    /// 职能部门: only the cases whistled to their department
    Responder,
    /// reads maps and figures, no case or personal data
    Viewer,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Admin,
        Role::Dispatcher,
        Role::StreetLeader,
        Role::CommunityLeader,
        Role::Planner,
        Role::GridWorker,
        Role::Responder,
        Role::Viewer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Dispatcher => "dispatcher",
            Role::StreetLeader => "street_leader",
            Role::CommunityLeader => "community_leader",
            Role::Planner => "planner",
            Role::GridWorker => "grid_worker",
            Role::Responder => "responder",
            Role::Viewer => "viewer",
        }
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            Role::Admin => "系统管理员",
            Role::Dispatcher => "调度员",
            Role::StreetLeader => "街道负责人",
            Role::CommunityLeader => "社区负责人",
            Role::Planner => "网格规划员",
            Role::GridWorker => "网格员",
            Role::Responder => "职能部门",
            Role::Viewer => "只读用户",
        }
    }

    pub fn parse(s: &str) -> Result<Role, AccountError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                AccountError::new(
                    "role",
                    format!("unknown role {s:?}: expected {}", Role::names()),
                )
            })
    }

    fn names() -> String {
        Role::ALL.map(Role::as_str).join(", ")
    }

    /// The level the role's scope must be at: `Some(levels)` when a scope is required.
    pub fn scope_levels(self) -> Option<&'static [Level]> {
        match self {
            Role::StreetLeader => Some(&[Level::Street]),
            Role::CommunityLeader => Some(&[Level::Community]),
            Role::GridWorker => Some(&[Level::Grid, Level::MicroGrid]),
            Role::Planner => Some(&[Level::District, Level::Street, Level::Community]),
            _ => None,
        }
    }

    /// Whether the role may hold `capability` at all (its scope narrows it further).
    pub fn has(self, capability: Capability) -> bool {
        use Capability::*;
        use Role::*;
        match capability {
            Public | FileReport => true,
            Session | ViewMap => true,
            ViewCases => matches!(
                self,
                Admin | Dispatcher | StreetLeader | CommunityLeader | GridWorker | Responder
            ),
            ViewReports => matches!(
                self,
                Admin | Dispatcher | StreetLeader | CommunityLeader | GridWorker
            ),
            ActOnCases => matches!(
                self,
                Admin | Dispatcher | StreetLeader | CommunityLeader | Responder
            ),
            ViewDispatch => matches!(self, Admin | Dispatcher | StreetLeader | CommunityLeader),
            ConfigureDispatch => matches!(self, Admin | Dispatcher),
            EditGrids | ViewSketches => matches!(self, Admin | Planner),
            ControlClock | ManageUsers => self == Admin,
            DeliveryReceipts => false,
        }
    }

    /// The case actions the role may take (on cases it can see).
    pub fn may_take(self, action: Action) -> bool {
        match self {
            Role::Admin | Role::Dispatcher => true,
            Role::StreetLeader | Role::CommunityLeader => action != Action::Acknowledge,
            Role::Responder => matches!(action, Action::Acknowledge | Action::Resolve),
            Role::Planner | Role::GridWorker | Role::Viewer => false,
        }
    }

    /// Whether the role reads reporters' names and phone numbers (of the cases it can see).
    pub fn sees_personal_data(self) -> bool {
        matches!(
            self,
            Role::Admin
                | Role::Dispatcher
                | Role::StreetLeader
                | Role::CommunityLeader
                | Role::Responder
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A wrong value in an account: `field` names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct AccountError {
    pub field: &'static str,
    pub message: String,
}

impl AccountError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        AccountError {
            field,
            message: message.into(),
        }
    }
}

/// A logged-in user (or the user an API token acts for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Principal {
    pub account_id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// the region the user is limited to; none: the whole city
    #[schema(value_type = Option<String>)]
    pub scope: Option<GridCode>,
    /// a responder's department code
    pub department: Option<String>,
    /// a one-time password must be changed before anything else
    pub must_change_password: bool,
}

impl Principal {
    /// Checks that role, scope and department fit together.
    pub fn check(
        role: Role,
        scope: Option<&GridCode>,
        department: Option<&str>,
    ) -> Result<(), AccountError> {
        match (role.scope_levels(), scope) {
            (Some(levels), None) => {
                return Err(AccountError::new(
                    "scope",
                    format!(
                        "a {role} needs a scope: a {} code",
                        levels
                            .iter()
                            .map(|l| l.as_str())
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                ))
            }
            (Some(levels), Some(code)) if !levels.contains(&code.level()) => {
                return Err(AccountError::new(
                    "scope",
                    format!(
                        "a {role}'s scope is a {} code, not a {} code ({code})",
                        levels
                            .iter()
                            .map(|l| l.as_str())
                            .collect::<Vec<_>>()
                            .join(" or "),
                        code.level().as_str()
                    ),
                ))
            }
            (None, Some(_)) if role == Role::Admin => {
                return Err(AccountError::new("scope", "an admin has no scope"))
            }
            _ => {}
        }
        match (role, department) {
            (Role::Responder, None) => Err(AccountError::new(
                "department",
                "a responder needs a department code",
            )),
            (Role::Responder, Some(_)) | (_, None) => Ok(()),
            (_, Some(_)) => Err(AccountError::new(
                "department",
                format!("only a responder has a department, not a {role}"),
            )),
        }
    }
}

/// What a machine client's key (one tied to no user) is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientPurpose {
    /// files reports: an Open311 client, the 12345 hotline
    Reports,
    /// the SMS gateway: posts delivery receipts for the notices it was handed
    SmsGateway,
}

impl ClientPurpose {
    pub const ALL: [ClientPurpose; 2] = [ClientPurpose::Reports, ClientPurpose::SmsGateway];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientPurpose::Reports => "reports",
            ClientPurpose::SmsGateway => "sms_gateway",
        }
    }

    pub fn parse(s: &str) -> Option<ClientPurpose> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s || p.as_str().replace('_', "-") == s)
    }

    /// The routes a key of this purpose may use, besides the public ones.
    fn allows(self, capability: Capability) -> bool {
        capability == Capability::Public
            || capability
                == match self {
                    ClientPurpose::Reports => Capability::FileReport,
                    ClientPurpose::SmsGateway => Capability::DeliveryReceipts,
                }
    }

    fn describe(self) -> &'static str {
        match self {
            ClientPurpose::Reports => "files reports",
            ClientPurpose::SmsGateway => "posts the SMS gateway's delivery receipts",
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// no session and no token; `client` is the peer address, for rate limits
    Anonymous {
        client: String,
    },
    /// an API key not tied to a user (an Open311 client, the hotline import, the SMS gateway)
    Client {
        id: i64,
        name: String,
        purpose: ClientPurpose,
    },
    User(Principal),
}

impl Caller {
    /// How the caller is named in the audit log.
    pub fn actor(&self) -> String {
        match self {
            Caller::Anonymous { client } => format!("anonymous@{client}"),
            Caller::Client { name, .. } => format!("api:{name}"),
            Caller::User(p) => p.username.clone(),
        }
    }

    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Caller::User(p) => Some(p),
            _ => None,
        }
    }

    pub fn is_anonymous(&self) -> bool {
        matches!(self, Caller::Anonymous { .. })
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// anyone, without logging in: categories, regions, locate, the public heatmap
    Public,
    /// anyone; anonymous callers are rate-limited
    FileReport,
    /// any logged-in user, even one who must still change a one-time password
    Session,
    /// staff: full-resolution maps and figures (narrowed to their region where it applies)
    ViewMap,
    /// cases, and single reports and photos (a responder: of their department's cases)
    ViewCases,
    /// the list of reports, by region (not for responders, whose view is by department)
    ViewReports,
    ActOnCases,
    /// routing rules, the escalation policy, dispatch figures and packages
    ViewDispatch,
    ConfigureDispatch,
    /// import and redraw regions, work on sketches
    EditGrids,
    ViewSketches,
    ControlClock,
    ManageUsers,
    /// the SMS gateway's delivery receipts: its own key only, no user
    DeliveryReceipts,
}

/// The resource a route's path names, checked against the caller's scope before the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    None,
    /// `{id}` is a case
    Case,
    /// `{id}` is a report
    Report,
    /// `{id}` is a photo
    Photo,
    /// `{code}` is a region the caller edits
    EditedRegion,
}

/// A route's access rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub capability: Capability,
    pub resource: Resource,
}

const fn r(capability: Capability) -> Option<Rule> {
    Some(Rule {
        capability,
        resource: Resource::None,
    })
}

const fn on(capability: Capability, resource: Resource) -> Option<Rule> {
    Some(Rule {
        capability,
        resource,
    })
}

/// The rule for `method` on the route template `route` (relative to `/api/v1`, as axum's
/// `MatchedPath` spells it: `/cases/{id}`). `None`: the route has no rule and is refused.
pub fn rule(method: &str, route: &str) -> Option<Rule> {
    use Capability::*;
    match (method, route) {
        ("GET", "/config" | "/categories" | "/regions" | "/locate" | "/clock") => r(Public),
        ("POST", "/locate") => r(Public),
        ("GET", "/departments") => r(Public),
        // the public map's timeline; small counts are suppressed for anonymous callers
        ("GET", "/reports/trend") => r(Public),
        ("POST", "/reports" | "/photos") => r(FileReport),
        // logging in is for those who are not yet
        ("POST", "/session") => r(Public),
        ("GET" | "DELETE", "/session") => r(Session),
        ("PUT", "/session/password") => r(Session),
        ("GET", "/regions/{code}" | "/publications") => r(ViewMap),
        ("GET", "/reports/heat" | "/hotspots" | "/emerging" | "/dashboard") => r(ViewMap),
        ("POST", "/geometry/split" | "/geometry/merge") => r(EditGrids),
        ("POST", "/regions/import") => r(EditGrids),
        ("POST", "/regions/{code}/redraw/check" | "/regions/{code}/redraw") => {
            on(EditGrids, Resource::EditedRegion)
        }
        ("GET", "/reports") => r(ViewReports),
        ("GET", "/reports/{id}") => on(ViewCases, Resource::Report),
        ("GET", "/photos/{id}" | "/photos/{id}/thumbnail") => on(ViewCases, Resource::Photo),
        ("GET", "/cases" | "/cases/stream") => r(ViewCases),
        ("GET", "/cases/{id}" | "/cases/{id}/photos/{n}" | "/cases/{id}/notices") => {
            on(ViewCases, Resource::Case)
        }
        ("POST", "/cases/{id}/actions") => on(ActOnCases, Resource::Case),
        ("GET", "/routing-rules" | "/routing/preview" | "/escalation-policy") => r(ViewDispatch),
        ("GET", "/dispatch/stats" | "/packages" | "/packages/proposals") => r(ViewDispatch),
        ("POST", "/routing-rules" | "/packages") => r(ConfigureDispatch),
        ("PUT" | "DELETE", "/routing-rules/{id}") => r(ConfigureDispatch),
        ("PUT", "/categories/{code}/dispatch" | "/escalation-policy") => r(ConfigureDispatch),
        ("POST", "/clock/advance") => r(ControlClock),
        ("GET", "/sketches" | "/sketches/{id}" | "/sketches/{id}/image") => r(ViewSketches),
        ("GET", "/sketches/{id}/overlay.png") => r(ViewSketches),
        ("POST", "/sketches") => r(EditGrids),
        ("PUT", "/sketches/{id}/gcps") => r(EditGrids),
        ("POST", "/sketches/{id}/vectorise" | "/sketches/{id}/review") => r(EditGrids),
        ("GET" | "POST", "/users") => r(ManageUsers),
        ("POST", "/users/{username}/disable") => r(ManageUsers),
        ("GET", "/audit") => r(ManageUsers),
        ("POST", "/notices/{id}/receipt") => r(DeliveryReceipts),
        _ => None,
    }
}

/// Where a caller's view stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// the whole city
    All,
    /// this region and everything below it
    Within(GridCode),
    /// the cases whistled to (or led by) this department, anywhere
    Department(String),
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// 401: log in (or send a token) first
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: logged in, but not allowed
    #[error("{0}")]
    Forbidden(String),
    /// 404: the resource is outside the caller's view; answered as if it did not exist
    #[error("{0}")]
    Hidden(String),
}

/// The facts of a case (or report) that decide who sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// the deepest region code the report was assigned to; none: outside every region
    pub region: Option<String>,
    /// departments that lead, assist or were whistled on the case
    pub departments: Vec<String>,
}

/// A caller allowed through a route's rule, with the view they have.
#[derive(Debug, Clone)]
pub struct Grant {
    pub caller: Caller,
    pub scope: Scope,
}

impl Grant {
    /// Decides whether `caller` may use a route with `rule` at all.
    pub fn permit(caller: Caller, rule: Rule) -> Result<Grant, Denied> {
        let capability = rule.capability;
        let principal = match &caller {
            Caller::Anonymous { .. }
                if matches!(capability, Capability::Public | Capability::FileReport) =>
            {
                return Ok(Grant {
                    caller,
                    scope: Scope::All,
                });
            }
            Caller::Client { purpose, .. } if purpose.allows(capability) => {
                return Ok(Grant {
                    caller,
                    scope: Scope::All,
                });
            }
            Caller::Anonymous { .. } => {
                return Err(Denied::Unauthenticated(
                    "log in first (or send an API token as `Authorization: Bearer …`)".into(),
                ))
            }
            Caller::Client { name, purpose, .. } => {
                return Err(Denied::Forbidden(format!(
                    "the API key of {name:?} only {}; ask for a token tied to a user",
                    purpose.describe()
                )))
            }
            Caller::User(p) => p,
        };
        if principal.must_change_password && capability != Capability::Session {
            return Err(Denied::Forbidden(
                "change your one-time password first (PUT /api/v1/session/password)".into(),
            ));
        }
        if !principal.role.has(capability) {
            return Err(Denied::Forbidden(format!(
                "a {} ({}) may not {}",
                principal.role,
                principal.role.name_zh(),
                describe(capability)
            )));
        }
        let scope = match (&principal.department, &principal.scope) {
            (Some(d), _) if principal.role == Role::Responder => Scope::Department(d.clone()),
            (_, Some(code)) => Scope::Within(code.clone()),
            _ => Scope::All,
        };
        Ok(Grant { caller, scope })
    }

    /// The region a list or figure should cover, given the one the request asked for:
    /// none asked → the caller's own region; inside it → as asked; a region containing the
    /// caller's → the caller's; elsewhere → 403.
    pub fn narrow(&self, requested: Option<&str>) -> Result<Option<String>, Denied> {
        let Scope::Within(own) = &self.scope else {
            return Ok(requested.map(str::to_owned));
        };
        let Some(requested) = requested else {
            return Ok(Some(own.as_str().to_owned()));
        };
        let Ok(code) = GridCode::parse(requested) else {
            // Not a code: the handler names the error.
            return Ok(Some(requested.to_owned()));
        };
        if code.is_within(own) {
            Ok(Some(code.as_str().to_owned()))
        } else if own.is_within(&code) {
            Ok(Some(own.as_str().to_owned()))
        } else {
            Err(Denied::Forbidden(format!(
                "region {requested} is outside your region {own}"
            )))
        }
    }

    /// The department a case list is limited to (a responder's), if any.
    pub fn department(&self) -> Option<&str> {
        match &self.scope {
            Scope::Department(d) => Some(d),
            _ => None,
        }
    }

    /// Whether the caller may see a case or report placed as `placement`.
    pub fn sees(&self, placement: &Placement) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Within(own) => placement
                .region
                .as_deref()
                .and_then(|c| GridCode::parse(c).ok())
                .is_some_and(|c| c.is_within(own)),
            Scope::Department(d) => placement.departments.iter().any(|x| x == d),
        }
    }

    /// Whether the caller may edit the region `code` (a planner: inside their scope).
    pub fn edits(&self, code: &str) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Within(own) => GridCode::parse(code).is_ok_and(|c| c.is_within(own)),
            Scope::Department(_) => false,
        }
    }

    pub fn may_take(&self, action: Action) -> bool {
        self.caller
            .principal()
            .is_some_and(|p| p.role.may_take(action))
    }

    /// Whether reporters' names and phone numbers are shown to this caller.
    pub fn sees_personal_data(&self) -> bool {
        self.caller
            .principal()
            .is_some_and(|p| p.role.sees_personal_data())
    }

    /// Whether the caller reads the public (rounded, suppressed) view of maps.
    pub fn is_public(&self) -> bool {
        self.caller.principal().is_none()
    }
}

fn describe(capability: Capability) -> &'static str {
    match capability {
        Capability::Public | Capability::FileReport | Capability::Session => "do this",
        Capability::ViewMap => "read maps and figures",
        Capability::ViewCases => "read cases and reports",
        Capability::ViewReports => "list reports",
        Capability::ActOnCases => "act on cases",
        Capability::ViewDispatch => "read the dispatch settings and figures",
        Capability::ConfigureDispatch => "change routing, the escalation policy or packages",
        Capability::EditGrids => "import, redraw or vectorise grids",
        Capability::ViewSketches => "read sketches",
        Capability::ControlClock => "move the service's clock",
        Capability::ManageUsers => "manage users or read the audit log",
        Capability::DeliveryReceipts => "post delivery receipts (only the SMS gateway's key does)",
    }
}

/// Checks a username: 2 to 40 characters of a-z, 0-9, `.`, `_`, `-`, starting with a letter or digit.
pub fn check_username(name: &str) -> Result<(), AccountError> {
    let ok = (2..=40).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(AccountError::new(
            "username",
            format!("{name:?} is not a username: 2 to 40 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role, scope: Option<&str>, department: Option<&str>) -> Caller {
        Caller::User(Principal {
            account_id: 1,
            username: "u".into(),
            display_name: "U".into(),
            role,
            scope: scope.map(|s| GridCode::parse(s).unwrap()),
            department: department.map(str::to_owned),
            must_change_password: false,
        })
    }

    fn rule_of(method: &str, route: &str) -> Rule {
        rule(method, route).unwrap()
    }

    #[test]
    fn anonymous_callers_file_reports_but_read_no_cases() {
        let anon = Caller::Anonymous {
            client: "1.2.3.4".into(),
        };
        assert!(Grant::permit(anon.clone(), rule_of("POST", "/reports")).is_ok());
        assert!(matches!(
            Grant::permit(anon, rule_of("GET", "/cases")),
            Err(Denied::Unauthenticated(_))
        ));
    }

    #[test]
    fn a_street_leader_is_narrowed_to_their_street_and_refused_another() {
        let g = Grant::permit(
            user(Role::StreetLeader, Some("150302001"), None),
            rule_of("GET", "/cases"),
        )
        .unwrap();
        assert_eq!(g.narrow(None).unwrap().as_deref(), Some("150302001"));
        assert_eq!(
            g.narrow(Some("150302")).unwrap().as_deref(),
            Some("150302001")
        );
        assert_eq!(
            g.narrow(Some("150302001002")).unwrap().as_deref(),
            Some("150302001002")
        );
        assert!(matches!(
            g.narrow(Some("150302002")),
            Err(Denied::Forbidden(_))
        ));
        let inside = Placement {
            region: Some("150302001002003".into()),
            departments: vec![],
        };
        let outside = Placement {
            region: Some("150302002001001".into()),
            departments: vec![],
        };
        assert!(g.sees(&inside));
        assert!(!g.sees(&outside));
        assert!(!g.sees(&Placement::default()));
    }

    #[test]
    fn a_responder_sees_only_their_departments_cases_and_only_answers_them() {
        let g = Grant::permit(
            user(Role::Responder, None, Some("fire_rescue")),
            rule_of("POST", "/cases/{id}/actions"),
        )
        .unwrap();
        let theirs = Placement {
            region: Some("150302001002003".into()),
            departments: vec!["urban_management".into(), "fire_rescue".into()],
        };
        let others = Placement {
            region: Some("150302001002003".into()),
            departments: vec!["urban_management".into()],
        };
        assert!(g.sees(&theirs));
        assert!(!g.sees(&others));
        assert!(g.may_take(Action::Acknowledge));
        assert!(!g.may_take(Action::Whistle));
    }

    #[test]
    fn roles_without_a_capability_are_forbidden_not_unauthenticated() {
        for (role, scope, dept) in [
            (Role::Viewer, None, None),
            (Role::Planner, Some("150302"), None),
        ] {
            assert!(matches!(
                Grant::permit(user(role, scope, dept), rule_of("GET", "/cases/{id}")),
                Err(Denied::Forbidden(_))
            ));
        }
        assert!(matches!(
            Grant::permit(
                user(Role::Dispatcher, None, None),
                rule_of("POST", "/regions/import")
            ),
            Err(Denied::Forbidden(_))
        ));
    }

    #[test]
    fn a_one_time_password_must_be_changed_before_anything_else() {
        let mut caller = user(Role::Admin, None, None);
        if let Caller::User(p) = &mut caller {
            p.must_change_password = true;
        }
        assert!(Grant::permit(caller.clone(), rule_of("PUT", "/session/password")).is_ok());
        assert!(matches!(
            Grant::permit(caller, rule_of("GET", "/cases")),
            Err(Denied::Forbidden(_))
        ));
    }

    #[test]
    fn machine_keys_without_a_user_do_only_what_they_are_for() {
        let hotline = Caller::Client {
            id: 1,
            name: "12345 hotline".into(),
            purpose: ClientPurpose::Reports,
        };
        assert!(Grant::permit(hotline.clone(), rule_of("POST", "/reports")).is_ok());
        for (method, route) in [("GET", "/reports"), ("POST", "/notices/{id}/receipt")] {
            assert!(matches!(
                Grant::permit(hotline.clone(), rule_of(method, route)),
                Err(Denied::Forbidden(_))
            ));
        }
        let gateway = Caller::Client {
            id: 2,
            name: "sms".into(),
            purpose: ClientPurpose::SmsGateway,
        };
        assert!(Grant::permit(gateway.clone(), rule_of("POST", "/notices/{id}/receipt")).is_ok());
        assert!(Grant::permit(gateway.clone(), rule_of("GET", "/categories")).is_ok());
        for (method, route) in [("POST", "/reports"), ("GET", "/cases")] {
            assert!(matches!(
                Grant::permit(gateway.clone(), rule_of(method, route)),
                Err(Denied::Forbidden(_))
            ));
        }
        // No person posts receipts, not even an admin.
        assert!(Role::ALL
            .iter()
            .all(|r| !r.has(Capability::DeliveryReceipts)));
        assert_eq!(
            ClientPurpose::parse("sms-gateway"),
            Some(ClientPurpose::SmsGateway)
        );
        assert_eq!(ClientPurpose::parse("sms"), None);
    }

    #[test]
    fn role_scope_and_department_must_fit() {
        let street = GridCode::parse("150302001").unwrap();
        let grid = GridCode::parse("150302001001001").unwrap();
        assert!(Principal::check(Role::StreetLeader, Some(&street), None).is_ok());
        assert_eq!(
            Principal::check(Role::StreetLeader, Some(&grid), None)
                .unwrap_err()
                .field,
            "scope"
        );
        assert_eq!(
            Principal::check(Role::CommunityLeader, None, None)
                .unwrap_err()
                .field,
            "scope"
        );
        assert_eq!(
            Principal::check(Role::Responder, None, None)
                .unwrap_err()
                .field,
            "department"
        );
        assert_eq!(
            Principal::check(Role::Dispatcher, None, Some("police"))
                .unwrap_err()
                .field,
            "department"
        );
        assert!(Principal::check(Role::Viewer, Some(&street), None).is_ok());
        assert!(Principal::check(Role::Admin, Some(&street), None).is_err());
    }

    #[test]
    fn usernames_are_checked() {
        assert!(check_username("wang.li-2").is_ok());
        for bad in ["", "a", "Wang", "-x", "王", &"x".repeat(41)] {
            assert!(check_username(bad).is_err(), "{bad:?}");
        }
    }
}
