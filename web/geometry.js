// Small GeoJSON helpers the pages share.

/** The polygons of a Polygon or MultiPolygon (each a list of rings); none for anything else. */
export function polygonsOf(geometry) {
  if (geometry?.type === 'Polygon') return [geometry.coordinates];
  if (geometry?.type === 'MultiPolygon') return geometry.coordinates;
  return [];
}

/** The area centroid of a region's largest outer ring: where its name goes (null: no area). */
export function labelPoint(geometry) {
  let best = null;
  for (const polygon of polygonsOf(geometry)) {
    const ring = polygon[0];
    let a = 0, cx = 0, cy = 0;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const f = ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
      a += f;
      cx += (ring[j][0] + ring[i][0]) * f;
      cy += (ring[j][1] + ring[i][1]) * f;
    }
    if (a !== 0 && (!best || Math.abs(a) > best.area)) best = { area: Math.abs(a), point: [cx / (3 * a), cy / (3 * a)] };
  }
  return best?.point ?? null;
}
