// Helpers shared by the pages that draw on an optional basemap.

/**
 * With a basemap that has a glyphs server, our labels use the basemap's own font stack: a stack the
 * server does not know would be asked for (and fail) before MapLibre falls back to local fonts.
 * Chinese characters are drawn locally either way. `null` without a glyphs server.
 */
export function basemapFont(map) {
  const style = map.getStyle();
  if (!style.glyphs) return null;
  for (const layer of style.layers) {
    const font = layer.layout?.['text-font'];
    if (Array.isArray(font) && font.length && font.every((name) => typeof name === 'string')) return font;
  }
  return null;
}
