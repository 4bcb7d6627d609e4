//! Bulk report intake: a CSV (e.g. a 12345 hotline export) or a GeoJSON FeatureCollection of
//! points becomes reports, each checked and assigned to its grid exactly like a report filed
//! through the API, loaded with COPY in one transaction. Rows that fail are not loaded; each is
//! named with its line and reason and kept for a reject file. Imported records are history for
//! the heatmaps and figures: they open no cases.

use super::intake::ReportInput;
use super::{Gridwatch, Result, WorkflowError};
use crate::domain::{Crs, ReportSource};
use crate::storage::bulk::{CopyRows, Loaded};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// Rows per COPY chunk (and per progress report).
pub const CHUNK: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    Csv,
    GeoJson,
}

impl ImportFormat {
    /// From a file name: `.geojson`/`.json` is GeoJSON, anything else CSV.
    pub fn from_path(path: &std::path::Path) -> Self {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
        {
            Some(e) if e == "geojson" || e == "json" => ImportFormat::GeoJson,
            _ => ImportFormat::Csv,
        }
    }
}

/// Defaults for what a file does not say per row.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// coordinates' reference system when a row has no `crs`
    pub crs: Crs,
    /// where the records came from when a row has no `source`
    pub source: ReportSource,
    /// check and assign every row, write nothing (`reports import --check`)
    pub check_only: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            crs: Crs::Wgs84,
            source: ReportSource::Hotline,
            check_only: false,
        }
    }
}

/// A row that was not loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// CSV: the line in the file (1 is the header); GeoJSON: the feature's number from 1
    pub line: u64,
    pub reason: String,
    /// the record as it was, for the reject file
    pub raw: RawRecord,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RawRecord {
    Csv(Vec<String>),
    Feature(Value),
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportOutcome {
    pub rows: usize,
    pub loaded: Loaded,
    pub rejected: Vec<Rejected>,
    /// CSV: the header, for the reject file
    pub header: Vec<String>,
}

/// One record before checking: the API's input, the source system's number, where it came from.
struct Record {
    line: u64,
    input: std::result::Result<ReportInput, String>,
    external_ref: Option<String>,
    raw: RawRecord,
}

/// The columns a CSV may have, by the names hotline exports use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Column {
    Time,
    Lon,
    Lat,
    Coordinates,
    Address,
    Category,
    Description,
    Source,
    Crs,
    Ref,
}

const COLUMN_NAMES: &[(Column, &[&str])] = &[
    (
        Column::Time,
        &[
            "reported_at",
            "time",
            "datetime",
            "受理时间",
            "来电时间",
            "上报时间",
            "发生时间",
            "时间",
        ],
    ),
    (Column::Lon, &["lon", "lng", "long", "longitude", "经度"]),
    (Column::Lat, &["lat", "latitude", "纬度"]),
    (Column::Coordinates, &["coordinates", "坐标", "经纬度"]),
    (
        Column::Address,
        &["address", "地址", "事发地址", "事发地点"],
    ),
    (
        Column::Category,
        &[
            "category",
            "类别",
            "诉求类别",
            "问题类型",
            "事件类型",
            "分类",
        ],
    ),
    (
        Column::Description,
        &["description", "内容", "诉求内容", "问题描述", "描述"],
    ),
    (Column::Source, &["source", "来源"]),
    (Column::Crs, &["crs", "坐标系"]),
    (
        Column::Ref,
        &["external_ref", "ref", "id", "工单编号", "工单号", "编号"],
    ),
];

fn column_of(header: &str) -> Option<Column> {
    let h = header.trim().trim_start_matches('\u{feff}').to_lowercase();
    COLUMN_NAMES
        .iter()
        .find(|(_, names)| names.contains(&h.as_str()))
        .map(|(c, _)| *c)
}

/// A time as exports write it: RFC 3339, or `YYYY-MM-DD HH:MM[:SS]` / `YYYY/MM/DD …` / a date,
/// in China Standard Time.
pub fn parse_time(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let china = FixedOffset::east_opt(8 * 3600).ok_or("no China offset")?;
    let normalised = s.replace('/', "-").replace('T', " ");
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(&normalised, format) {
            if let Some(t) = china.from_local_datetime(&t).single() {
                return Ok(t.with_timezone(&Utc));
            }
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(&normalised, "%Y-%m-%d") {
        if let Some(t) = d
            .and_hms_opt(0, 0, 0)
            .and_then(|t| china.from_local_datetime(&t).single())
        {
            return Ok(t.with_timezone(&Utc));
        }
    }
    Err(format!(
        "time {s:?} is not RFC 3339 or YYYY-MM-DD[ HH:MM[:SS]] (China time)"
    ))
}

/// Category text to a category code: the code itself, the Chinese or English name, or text that
/// contains exactly one category's Chinese name (`电动车飞线充电` → `flying_lead_charging`).
pub struct CategoryMatcher {
    exact: HashMap<String, String>,
    names_zh: Vec<(String, String)>,
}

impl CategoryMatcher {
    pub fn new(categories: &HashMap<String, crate::storage::reports::Category>) -> Self {
        let mut exact = HashMap::new();
        let mut names_zh = Vec::new();
        for c in categories.values() {
            exact.insert(c.code.to_lowercase(), c.code.clone());
            exact.insert(c.name_zh.clone(), c.code.clone());
            exact.insert(c.name_en.to_lowercase(), c.code.clone());
            names_zh.push((c.name_zh.clone(), c.code.clone()));
        }
        // Longest names first, so a longer name wins over one it contains.
        names_zh.sort_by(|a, b| {
            b.0.chars()
                .count()
                .cmp(&a.0.chars().count())
                .then(a.0.cmp(&b.0))
        });
        CategoryMatcher { exact, names_zh }
    }

    pub fn code(&self, text: &str) -> std::result::Result<String, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("category is empty".into());
        }
        if let Some(code) = self.exact.get(&t.to_lowercase()) {
            return Ok(code.clone());
        }
        let hits: Vec<&(String, String)> = self
            .names_zh
            .iter()
            .filter(|(n, _)| t.contains(n.as_str()))
            .collect();
        match hits.as_slice() {
            // A short form of one name (`油烟` for 油烟排放) is that category.
            [] if t.chars().count() >= 2 => {
                let within: Vec<&(String, String)> = self
                    .names_zh
                    .iter()
                    .filter(|(n, _)| n.contains(t))
                    .collect();
                match within.as_slice() {
                    [one] => Ok(one.1.clone()),
                    [] => Err(format!(
                        "category {t:?} matches no category (codes and names: GET /api/v1/categories)"
                    )),
                    several => Err(format!(
                        "category {t:?} could be any of {}",
                        several
                            .iter()
                            .map(|h| h.0.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
            }
            [] => Err(format!(
                "category {t:?} matches no category (codes and names: GET /api/v1/categories)"
            )),
            [one] => Ok(one.1.clone()),
            [first, rest @ ..] => {
                if rest.iter().all(|(n, _)| first.0.contains(n.as_str())) {
                    Ok(first.1.clone())
                } else {
                    Err(format!(
                        "category {t:?} names more than one category ({})",
                        hits.iter()
                            .map(|h| h.0.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
        }
    }
}

fn number(s: &str, field: &str) -> std::result::Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{field} {:?} is not a number", s.trim()))
}

fn csv_reader(bytes: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes)
}

/// The CSV's records, read one at a time, so they are parsed while PostgreSQL takes the rows
/// before them; `Err` for a problem with the whole file (its header).
struct CsvRecords<'a> {
    header: Vec<String>,
    at: HashMap<Column, usize>,
    reader: csv::Reader<&'a [u8]>,
    matcher: &'a CategoryMatcher,
    opts: &'a ImportOptions,
}

impl<'a> CsvRecords<'a> {
    fn new(
        bytes: &'a [u8],
        matcher: &'a CategoryMatcher,
        opts: &'a ImportOptions,
    ) -> Result<CsvRecords<'a>> {
        let mut reader = csv_reader(bytes);
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| {
                WorkflowError::invalid("file", format!("the CSV header cannot be read: {e}"))
            })?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_owned())
            .collect();
        let mut at: HashMap<Column, usize> = HashMap::new();
        for (i, h) in header.iter().enumerate() {
            if let Some(c) = column_of(h) {
                at.entry(c).or_insert(i);
            }
        }
        let names = |c: Column| {
            COLUMN_NAMES
                .iter()
                .find(|(k, _)| *k == c)
                .map(|(_, n)| n.join(", "))
                .unwrap_or_default()
        };
        for needed in [Column::Time, Column::Category] {
            if !at.contains_key(&needed) {
                return Err(WorkflowError::invalid(
                    "file",
                    format!(
                        "the CSV has no {needed:?} column (one of: {}); its header is {:?}",
                        names(needed),
                        header.join(",")
                    )
                    .to_lowercase(),
                ));
            }
        }
        let has_point = (at.contains_key(&Column::Lon) && at.contains_key(&Column::Lat))
            || at.contains_key(&Column::Coordinates);
        if !has_point && !at.contains_key(&Column::Address) {
            return Err(WorkflowError::invalid(
                "file",
                format!(
                    "the CSV has no coordinates: lon and lat columns ({} / {}) or a coordinates column ({})",
                    names(Column::Lon),
                    names(Column::Lat),
                    names(Column::Coordinates)
                ),
            ));
        }
        Ok(CsvRecords {
            header,
            at,
            reader,
            matcher,
            opts,
        })
    }

    /// The number of records and the ticket numbers among them, from a quick pass over the
    /// file that checks nothing else.
    fn count_and_refs(bytes: &[u8], at: &HashMap<Column, usize>) -> (usize, Vec<String>) {
        let mut reader = csv_reader(bytes);
        let mut record = csv::ByteRecord::new();
        let (mut count, mut refs) = (0, Vec::new());
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    if let Some(r) = at.get(&Column::Ref).and_then(|&i| record.get(i)) {
                        // (trimmed as a StringRecord's fields are)
                        let r = String::from_utf8_lossy(r);
                        if !r.trim().is_empty() {
                            refs.push(r.trim().to_owned());
                        }
                    }
                }
                // as the full pass does: an unreadable record is one record, rejected
                Err(_) => {}
            }
            count += 1;
        }
        (count, refs)
    }
}

impl Iterator for CsvRecords<'_> {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        let (at, matcher, opts) = (&self.at, self.matcher, self.opts);
        let mut row = csv::StringRecord::new();
        let (line, fields) = match self.reader.read_record(&mut row) {
            Ok(false) => return None,
            Ok(true) => (
                row.position().map_or(0, |p| p.line()),
                row.iter().map(str::to_owned).collect::<Vec<_>>(),
            ),
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                return Some(Record {
                    line,
                    input: Err(format!("unreadable CSV record: {e}")),
                    external_ref: None,
                    raw: RawRecord::Csv(Vec::new()),
                });
            }
        };
        let get = |c: Column| {
            at.get(&c)
                .and_then(|&i| fields.get(i))
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        let input = (|| -> std::result::Result<ReportInput, String> {
            let (lon, lat) = match (get(Column::Lon), get(Column::Lat), get(Column::Coordinates)) {
                (Some(lon), Some(lat), _) => (number(lon, "lon")?, number(lat, "lat")?),
                (_, _, Some(both)) => {
                    let (a, b) = both
                        .split_once([',', ' ', '，'])
                        .ok_or_else(|| format!("coordinates {both:?} are not \"lon,lat\""))?;
                    (number(a, "lon")?, number(b, "lat")?)
                }
                _ if get(Column::Address).is_some() => return Err(
                    "no coordinates, only an address: addresses are not geocoded; give lon and lat"
                        .into(),
                ),
                _ => return Err("no coordinates".into()),
            };
            let time = get(Column::Time).ok_or("no time")?;
            Ok(ReportInput {
                category: matcher.code(get(Column::Category).unwrap_or(""))?,
                lon,
                lat,
                crs: Some(get(Column::Crs).unwrap_or(opts.crs.as_str()).to_owned()),
                description: get(Column::Description).map(str::to_owned),
                source: get(Column::Source)
                    .unwrap_or(opts.source.as_str())
                    .to_owned(),
                reported_at: Some(parse_time(time)?),
                ..Default::default()
            })
        })();
        Some(Record {
            line,
            input,
            external_ref: get(Column::Ref).map(str::to_owned),
            raw: RawRecord::Csv(fields),
        })
    }
}

/// The FeatureCollection's records; `Err` for a problem with the whole file.
fn geojson_records(
    bytes: &[u8],
    matcher: &CategoryMatcher,
    opts: &ImportOptions,
) -> Result<Vec<Record>> {
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| WorkflowError::invalid("file", format!("the file is not valid JSON: {e}")))?;
    if doc.get("type").and_then(Value::as_str) != Some("FeatureCollection") {
        return Err(WorkflowError::invalid(
            "file",
            "expected a GeoJSON FeatureCollection (\"type\": \"FeatureCollection\")",
        ));
    }
    let features = doc
        .get("features")
        .and_then(Value::as_array)
        .ok_or_else(|| WorkflowError::invalid("file", "\"features\" must be an array"))?;
    let mut records = Vec::with_capacity(features.len());
    for (i, f) in features.iter().enumerate() {
        let props = f.get("properties").cloned().unwrap_or(Value::Null);
        let text = |k: &str| {
            props
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let input = (|| -> std::result::Result<ReportInput, String> {
            let geometry = f.get("geometry").ok_or("no geometry")?;
            if geometry.get("type").and_then(Value::as_str) != Some("Point") {
                return Err("the geometry is not a Point".into());
            }
            let c = geometry
                .get("coordinates")
                .and_then(Value::as_array)
                .filter(|c| c.len() >= 2)
                .ok_or("the Point has no [lon, lat] coordinates")?;
            let lon = c[0].as_f64().ok_or("lon is not a number")?;
            let lat = c[1].as_f64().ok_or("lat is not a number")?;
            let time = text("reported_at").ok_or("no properties.reported_at")?;
            Ok(ReportInput {
                category: matcher.code(text("category").ok_or("no properties.category")?)?,
                lon,
                lat,
                crs: Some(text("crs").unwrap_or(opts.crs.as_str()).to_owned()),
                description: text("description").map(str::to_owned),
                source: text("source").unwrap_or(opts.source.as_str()).to_owned(),
                reported_at: Some(parse_time(time)?),
                ..Default::default()
            })
        })();
        let external_ref = match f.get("id").or_else(|| props.get("external_ref")) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        records.push(Record {
            line: i as u64 + 1,
            input,
            external_ref,
            raw: RawRecord::Feature(f.clone()),
        });
    }
    Ok(records)
}

impl Gridwatch {
    /// Imports a file of reports. `progress(done, total)` is called after every chunk. A problem
    /// with the whole file (not UTF-8, no header, not a FeatureCollection) is an `Err` and
    /// nothing is written; row problems are in the outcome, and the other rows are loaded
    /// (with [`ImportOptions::check_only`], nothing is: the outcome says what would be).
    pub async fn import_reports(
        &self,
        bytes: &[u8],
        format: ImportFormat,
        opts: &ImportOptions,
        mut progress: impl FnMut(usize, usize) + Send,
    ) -> Result<ImportOutcome> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        if let Err(e) = std::str::from_utf8(bytes) {
            return Err(WorkflowError::invalid(
                "file",
                format!(
                    "the file is not UTF-8 ({e}); a GBK export can be converted with \
                     `iconv -f GBK -t UTF-8`"
                ),
            ));
        }
        let matcher = CategoryMatcher::new(&self.categories());
        // A CSV is parsed row by row inside the COPY; a quick first pass gives its number of
        // records (for the progress) and its ticket numbers. A GeoJSON document is parsed whole.
        let (header, total, refs, mut records): (_, _, _, Box<dyn Iterator<Item = Record> + Send>) =
            match format {
                ImportFormat::Csv => {
                    let mut csv = CsvRecords::new(bytes, &matcher, opts)?;
                    let (total, refs) = CsvRecords::count_and_refs(bytes, &csv.at);
                    (std::mem::take(&mut csv.header), total, refs, Box::new(csv))
                }
                ImportFormat::GeoJson => {
                    let records = geojson_records(bytes, &matcher, opts)?;
                    let refs = records
                        .iter()
                        .filter_map(|r| r.external_ref.clone())
                        .collect();
                    (
                        Vec::new(),
                        records.len(),
                        refs,
                        Box::new(records.into_iter()),
                    )
                }
            };
        if total == 0 {
            return Err(WorkflowError::invalid("file", "the file has no records"));
        }
        let now = self.clock.now();
        // Ticket numbers loaded before are skipped (a file imported again adds nothing twice);
        // they are looked up inside the load, which holds the turn of bulk loads to its end.
        let mut load = None;
        let mut loaded_before = HashSet::new();
        if !opts.check_only {
            let mut l = self.db.begin_bulk_load().await?;
            // (only those that could be stored: the rest are rejected below)
            let refs: Vec<&str> = refs
                .iter()
                .map(String::as_str)
                .filter(|x| !x.contains('\0') && x.chars().count() <= 100)
                .collect();
            loaded_before = l.loaded_refs(&refs).await?;
            load = Some(l);
        }
        let mut rejected = Vec::new();
        let mut already_loaded = 0u64;
        let mut seen_refs = HashSet::new();
        let mut done = 0usize;
        // The rows are checked and assigned chunk by chunk while PostgreSQL takes the previous
        // chunk: the iterator runs inside the COPY.
        let chunks = std::iter::from_fn(|| {
            let mut rows = CopyRows::with_capacity(CHUNK);
            let mut n = 0;
            for r in records.by_ref() {
                n += 1;
                let checked = r.input.and_then(|input| {
                    self.prepare_report(&input, now)
                        .map(|(row, _)| row)
                        .map_err(|e| e.to_string())
                });
                let checked = checked.and_then(|row| match &r.external_ref {
                    Some(x) if x.chars().count() > 100 => {
                        Err(format!("external_ref {x:?} is longer than 100 characters"))
                    }
                    Some(x) if x.contains('\0') => Err(format!(
                        "external_ref {x:?} contains a NUL character (U+0000), which cannot be stored"
                    )),
                    Some(x) if !seen_refs.insert(x.clone()) => {
                        Err(format!("external_ref {x:?} appears earlier in the file"))
                    }
                    _ => Ok(row),
                });
                match checked {
                    Ok(_)
                        if r.external_ref
                            .as_ref()
                            .is_some_and(|x| loaded_before.contains(x)) =>
                    {
                        already_loaded += 1
                    }
                    Ok(row) => rows.push(&row, r.external_ref.as_deref()),
                    Err(reason) => rejected.push(Rejected {
                        line: r.line,
                        reason,
                        raw: r.raw,
                    }),
                }
                if n == CHUNK {
                    break;
                }
            }
            if n == 0 {
                return None;
            }
            done += n;
            progress(done, total);
            Some(rows)
        });
        let loaded = match load {
            None => {
                // Every row goes through the same checks and assignment, up to the COPY rows.
                chunks.for_each(drop);
                Loaded::default()
            }
            Some(load) => {
                let inserted = load.copy(chunks).await?;
                Loaded {
                    inserted,
                    already_loaded,
                }
            }
        };
        self.counters
            .reports_imported
            .fetch_add(loaded.inserted, std::sync::atomic::Ordering::Relaxed);
        Ok(ImportOutcome {
            rows: done,
            loaded,
            rejected,
            header,
        })
    }
}

/// The reject file: the rejected CSV rows with an `import_error` column, or a FeatureCollection
/// of the rejected features with `import_error` and `import_line` properties.
pub fn reject_file(outcome: &ImportOutcome, format: ImportFormat) -> Vec<u8> {
    match format {
        ImportFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let mut header = outcome.header.clone();
            header.push("import_line".into());
            header.push("import_error".into());
            let _ = w.write_record(&header);
            for r in &outcome.rejected {
                let mut fields = match &r.raw {
                    RawRecord::Csv(f) => f.clone(),
                    RawRecord::Feature(f) => vec![f.to_string()],
                };
                fields.resize(outcome.header.len(), String::new());
                fields.push(r.line.to_string());
                fields.push(r.reason.clone());
                let _ = w.write_record(&fields);
            }
            w.into_inner().unwrap_or_default()
        }
        ImportFormat::GeoJson => {
            let features: Vec<Value> = outcome
                .rejected
                .iter()
                .map(|r| {
                    let mut f = match &r.raw {
                        RawRecord::Feature(f) => f.clone(),
                        RawRecord::Csv(_) => serde_json::json!({"type": "Feature"}),
                    };
                    if !f.get("properties").is_some_and(Value::is_object) {
                        f["properties"] = serde_json::json!({});
                    }
                    f["properties"]["import_error"] = Value::String(r.reason.clone());
                    f["properties"]["import_line"] = Value::from(r.line);
                    f
                })
                .collect();
            serde_json::to_vec_pretty(&serde_json::json!({
                "type": "FeatureCollection",
                "features": features,
            }))
            .unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::reports::{Category, EventClass};

    fn catalogue() -> HashMap<String, Category> {
        let class = EventClass {
            code: "x".into(),
            name_zh: "x".into(),
            name_en: "x".into(),
        };
        [
            ("fire_lane_blocked", "消防通道堵塞", "Fire-lane blockage"),
            (
                "flying_lead_charging",
                "飞线充电",
                "Flying-lead e-bike charging",
            ),
            ("charging_wanted", "充电难", "E-bike charging points wanted"),
        ]
        .into_iter()
        .map(|(code, zh, en)| {
            (
                code.to_owned(),
                Category {
                    code: code.into(),
                    name_zh: zh.into(),
                    name_en: en.into(),
                    event_class: class.clone(),
                },
            )
        })
        .collect()
    }

    #[test]
    fn category_text_is_matched_by_code_name_or_containment() {
        let m = CategoryMatcher::new(&catalogue());
        assert_eq!(m.code("fire_lane_blocked").unwrap(), "fire_lane_blocked");
        assert_eq!(m.code("消防通道堵塞").unwrap(), "fire_lane_blocked");
        assert_eq!(m.code("fire-lane blockage").unwrap(), "fire_lane_blocked");
        assert_eq!(m.code("电动车飞线充电").unwrap(), "flying_lead_charging");
        // a short form of exactly one name
        assert_eq!(m.code("消防通道").unwrap(), "fire_lane_blocked");
        assert!(m.code("充电").unwrap_err().contains("飞线充电, 充电难"));
        assert!(m.code("消").unwrap_err().contains("matches no category"));
        assert!(m
            .code("噪音扰民")
            .unwrap_err()
            .contains("matches no category"));
        assert!(m
            .code("飞线充电和充电难")
            .unwrap_err()
            .contains("more than one"));
        assert!(m.code(" ").is_err());
    }

    #[test]
    fn export_times_are_china_time() {
        let t = |s| parse_time(s).unwrap().to_rfc3339();
        assert_eq!(t("2026-03-01 08:30:00"), "2026-03-01T00:30:00+00:00");
        assert_eq!(t("2026/03/01 08:30"), "2026-03-01T00:30:00+00:00");
        assert_eq!(t("2026-03-01"), "2026-02-28T16:00:00+00:00");
        assert_eq!(t("2026-03-01T08:30:00Z"), "2026-03-01T08:30:00+00:00");
        assert!(parse_time("yesterday").unwrap_err().contains("yesterday"));
    }

    #[test]
    fn headers_in_chinese_and_english_are_recognised() {
        assert_eq!(column_of("受理时间"), Some(Column::Time));
        assert_eq!(column_of("\u{feff}工单编号"), Some(Column::Ref));
        assert_eq!(column_of(" Longitude "), Some(Column::Lon));
        assert_eq!(column_of("诉求类别"), Some(Column::Category));
        assert_eq!(column_of("备注"), None);
    }
}
