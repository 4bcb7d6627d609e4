//! Coordinate conversions against a reference implementation: the gcoord npm package, run in
//! node on the same points. Forward transforms must agree to well under a metre; our inverse is
//! iterative (exact), gcoord's is an approximation, so we compare our inverse with the true
//! WGS-84 point and require gcoord's to lie within a metre of it too.

use crate::support::repo_dir;
use gridwatch::spatial::crs;
use gridwatch::spatial::distance::metres_between;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn conversions_agree_with_gcoord() {
    let dir = repo_dir().join("tests");
    assert!(
        dir.join("node_modules/gcoord").exists(),
        "tests/node_modules/gcoord is missing: run scripts/setup (npm ci in tests/)"
    );
    // A lattice over China plus points over Wuhai.
    let mut points = Vec::new();
    for i in 0..40 {
        for j in 0..25 {
            points.push((74.0 + i as f64 * 1.55, 19.0 + j as f64 * 1.4));
        }
    }
    for k in 0..200 {
        points.push((
            106.6 + (k % 20) as f64 * 0.025,
            39.0 + (k / 20) as f64 * 0.09,
        ));
    }
    let input: Vec<[f64; 2]> = points.iter().map(|&(x, y)| [x, y]).collect();
    let mut child = Command::new("node")
        .arg(dir.join("reference/crs.mjs"))
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node must be installed (scripts/setup)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "node failed");
    let reference: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let xy = |v: &Value| (v[0].as_f64().unwrap(), v[1].as_f64().unwrap());
    let mut worst = [0.0f64; 4];
    for (&(lon, lat), r) in points.iter().zip(&reference) {
        let (gx, gy) = crs::wgs84_to_gcj02(lon, lat);
        let (rx, ry) = xy(&r["gcj02"]);
        worst[0] = worst[0].max(metres_between(gx, gy, rx, ry));
        let (bx, by) = crs::wgs84_to_bd09(lon, lat);
        let (rx, ry) = xy(&r["bd09"]);
        worst[1] = worst[1].max(metres_between(bx, by, rx, ry));
        // inverse: ours against the truth, and the reference's inverse against the truth
        let (ix, iy) = crs::gcj02_to_wgs84(gx, gy);
        let (rx, ry) = xy(&r["wgs_from_gcj02"]);
        worst[2] = worst[2]
            .max(metres_between(ix, iy, lon, lat))
            .max(metres_between(ix, iy, rx, ry));
        let (ix, iy) = crs::bd09_to_wgs84(bx, by);
        let (rx, ry) = xy(&r["wgs_from_bd09"]);
        worst[3] = worst[3]
            .max(metres_between(ix, iy, lon, lat))
            .max(metres_between(ix, iy, rx, ry));
    }
    println!(
        "worst differences from gcoord over {} points: wgs→gcj {:.4} m, wgs→bd {:.4} m, gcj→wgs {:.4} m, bd→wgs {:.4} m",
        points.len(),
        worst[0],
        worst[1],
        worst[2],
        worst[3]
    );
    for w in worst {
        assert!(w < 1.0, "{worst:?}");
    }
}
