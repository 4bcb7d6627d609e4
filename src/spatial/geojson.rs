//! Reading GeoJSON polygon geometry into `geo` types, with the ring rules of RFC 7946 checked and
//! coordinates converted to WGS-84. The one place polygon GeoJSON is parsed.

use crate::domain::{Crs, Wgs84Point};
use geo::{Coord, LineString, MultiPolygon, Polygon};
use serde_json::Value;

/// A GeoJSON Polygon or MultiPolygon as a WGS-84 `MultiPolygon`, with the ring rules of
/// RFC 7946 checked (closed, at least four positions) and every position converted from `crs`.
pub fn parse_geometry(g: &Value, crs: Crs) -> std::result::Result<MultiPolygon<f64>, String> {
    let kind = g.get("type").and_then(Value::as_str).unwrap_or("");
    let coords = g.get("coordinates").ok_or("geometry has no coordinates")?;
    let polygons: Vec<&Value> = match kind {
        "Polygon" => vec![coords],
        "MultiPolygon" => coords
            .as_array()
            .ok_or("MultiPolygon coordinates must be an array")?
            .iter()
            .collect(),
        other => {
            return Err(format!(
                "geometry type {other:?} is not a Polygon or MultiPolygon"
            ))
        }
    };
    if polygons.is_empty() {
        return Err("the MultiPolygon is empty".into());
    }
    let mut out = Vec::with_capacity(polygons.len());
    for (pi, poly) in polygons.into_iter().enumerate() {
        let rings = poly
            .as_array()
            .ok_or(format!("polygon {pi} must be an array of rings"))?;
        if rings.is_empty() {
            return Err(format!("polygon {pi} has no rings"));
        }
        let mut parsed = Vec::with_capacity(rings.len());
        for (ri, ring) in rings.iter().enumerate() {
            let positions = ring.as_array().ok_or(format!(
                "polygon {pi} ring {ri} must be an array of positions"
            ))?;
            let mut line = Vec::with_capacity(positions.len());
            for (k, pos) in positions.iter().enumerate() {
                let xy = pos.as_array().filter(|a| a.len() >= 2);
                let (x, y) = match xy.map(|a| (a[0].as_f64(), a[1].as_f64())) {
                    Some((Some(x), Some(y))) => (x, y),
                    _ => {
                        return Err(format!(
                            "polygon {pi} ring {ri} position {k} is not [lon, lat]"
                        ))
                    }
                };
                let p = Wgs84Point::from_crs(x, y, crs)
                    .map_err(|e| format!("polygon {pi} ring {ri} position {k}: {e}"))?;
                line.push(Coord {
                    x: p.lon(),
                    y: p.lat(),
                });
            }
            if line.len() < 4 {
                return Err(format!(
                    "polygon {pi} ring {ri} has {} positions; a ring needs at least 4",
                    line.len()
                ));
            }
            let (first, last) = (positions.first(), positions.last());
            if first != last {
                return Err(format!(
                    "polygon {pi} ring {ri} is not closed: its first and last positions differ"
                ));
            }
            parsed.push(LineString(line));
        }
        let exterior = parsed.remove(0);
        out.push(Polygon::new(exterior, parsed));
    }
    Ok(MultiPolygon(out))
}

/// A GeoJSON LineString as WGS-84 coordinates, every position converted from `crs`.
pub fn parse_line(g: &Value, crs: Crs) -> std::result::Result<LineString<f64>, String> {
    let kind = g.get("type").and_then(Value::as_str).unwrap_or("");
    if kind != "LineString" {
        return Err(format!("geometry type {kind:?} is not a LineString"));
    }
    let positions = g
        .get("coordinates")
        .and_then(Value::as_array)
        .ok_or("LineString coordinates must be an array of positions")?;
    if positions.len() < 2 {
        return Err(format!(
            "the line has {} position(s); it needs at least 2",
            positions.len()
        ));
    }
    let mut line = Vec::with_capacity(positions.len());
    for (k, pos) in positions.iter().enumerate() {
        let xy = pos.as_array().filter(|a| a.len() >= 2);
        let Some((Some(x), Some(y))) = xy.map(|a| (a[0].as_f64(), a[1].as_f64())) else {
            return Err(format!("position {k} is not [lon, lat]"));
        };
        let p = Wgs84Point::from_crs(x, y, crs).map_err(|e| format!("position {k}: {e}"))?;
        line.push(Coord {
            x: p.lon(),
            y: p.lat(),
        });
    }
    Ok(LineString(line))
}
