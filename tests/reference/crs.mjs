// Reference conversions with the gcoord package (npm), for tests/integration/crs_reference.rs.
// Reads [[lon, lat], ...] (WGS-84) as JSON on stdin; prints, for each point, its GCJ-02 and
// BD-09 forms and the WGS-84 that gcoord recovers from each.
import gcoord from 'gcoord';

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const points = JSON.parse(input);
  const out = points.map((p) => {
    const gcj = gcoord.transform(p, gcoord.WGS84, gcoord.GCJ02);
    const bd = gcoord.transform(p, gcoord.WGS84, gcoord.BD09);
    return {
      gcj02: gcj,
      bd09: bd,
      wgs_from_gcj02: gcoord.transform(gcj, gcoord.GCJ02, gcoord.WGS84),
      wgs_from_bd09: gcoord.transform(bd, gcoord.BD09, gcoord.WGS84),
    };
  });
  process.stdout.write(JSON.stringify(out));
});
