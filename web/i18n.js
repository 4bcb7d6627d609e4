// All user-visible strings of the map page, in Chinese (default) and English.
//
// Region names come from the data and stay Chinese in both languages; category names come from the
// API (name_zh / name_en). Everything else the page shows is here, so a translator edits one file.
// `{name}` placeholders are filled in by `t()`.

export const LANGUAGES = ['zh', 'en'];
export const DEFAULT_LANGUAGE = 'zh';

/** BCP 47 tag for <html lang>, which also tells Chromium and MapLibre to draw Simplified Chinese glyphs. */
export const HTML_LANG = { zh: 'zh-CN', en: 'en' };

const STRINGS = {
  zh: {
    page_title: '网格治理热力图 · gridwatch',
    app_title: '网格治理热力图',
    app_subtitle: '乌海市 · 上报热点与网格力量',
    lang_button_label: '切换为英文 (Switch to English)',
    reset_view: '全市',
    reset_view_label: '缩放到全市范围',
    filters: '筛选',
    filters_toggle_label: '显示或隐藏筛选面板',
    categories: '事件类别',
    select_all: '全选',
    select_none: '清空',
    date_range: '上报时间',
    date_from: '起始日期',
    date_to: '结束日期',
    clear_dates: '不限时间',
    date_invalid: '起始日期晚于结束日期',
    count_loading: '正在加载上报…',
    count_shown: '显示 {n} 条上报',
    count_none_selected: '未选择事件类别',
    legend: '图例',
    legend_density: '上报密度',
    legend_low: '少',
    legend_high: '多',
    legend_points: '放大到 16 级以上显示单条上报，颜色对应事件类别。',
    legend_boundaries: '边界',
    zoom_hint: '放大地图查看{next}（当前 {z} 级）',
    zoom_hint_click: '点击网格查看网格力量与上报统计',
    level_district: '区',
    level_street: '街道',
    level_community: '社区',
    level_grid: '网格',
    level_micro_grid: '微网格',
    panel_close: '关闭',
    panel_loading: '正在加载…',
    code: '编码',
    level: '层级',
    hierarchy: '所属',
    synthetic: '示例数据',
    synthetic_title: '该边界为演示生成的示例数据，并非官方边界',
    party_branch: '党组织',
    party_branch_name: '名称',
    secretary: '书记',
    contact: '联系电话',
    no_party_branch: '暂无党组织信息',
    staff: '网格力量',
    role_grid_leader: '网格长',
    role_police_officer: '民警',
    role_full_time_worker: '专职网格员',
    role_part_time_worker: '兼职网格员',
    no_staff: '暂无人员信息',
    boundary_version: '边界版本',
    version_line: '第 {v} 版，{date}起生效',
    reports: '上报统计（全部时间）',
    reports_total: '合计',
    no_reports: '暂无上报',
    error_prefix: '数据加载失败：',
    error_network: '无法连接服务器',
    error_http: '服务器返回错误 {status}',
    error_reload: '重新加载',
    error_dismiss: '关闭提示',
    map_label: '乌海市网格地图',
  },
  en: {
    page_title: 'Grid governance heatmap · gridwatch',
    app_title: 'Grid governance heatmap',
    app_subtitle: 'Wuhai · report hot spots and grid staff',
    lang_button_label: 'Switch to Chinese (切换为中文)',
    reset_view: 'Whole city',
    reset_view_label: 'Zoom out to the whole city',
    filters: 'Filters',
    filters_toggle_label: 'Show or hide the filters',
    categories: 'Categories',
    select_all: 'All',
    select_none: 'None',
    date_range: 'Reported between',
    date_from: 'From date',
    date_to: 'To date',
    clear_dates: 'Any time',
    date_invalid: 'The start date is after the end date',
    count_loading: 'Loading reports…',
    count_shown: '{n} reports shown',
    count_none_selected: 'No category selected',
    legend: 'Legend',
    legend_density: 'Report density',
    legend_low: 'Low',
    legend_high: 'High',
    legend_points: 'From zoom 16 single reports are shown, coloured by category.',
    legend_boundaries: 'Boundaries',
    zoom_hint: 'Zoom in to see {next} (zoom {z} now)',
    zoom_hint_click: 'Click a grid for its staff and report counts',
    level_district: 'District',
    level_street: 'Street',
    level_community: 'Community',
    level_grid: 'Grid',
    level_micro_grid: 'Micro-grid',
    panel_close: 'Close',
    panel_loading: 'Loading…',
    code: 'Code',
    level: 'Level',
    hierarchy: 'Part of',
    synthetic: 'Synthetic',
    synthetic_title: 'This boundary is generated demo data, not an official boundary',
    party_branch: 'Party branch',
    party_branch_name: 'Name',
    secretary: 'Secretary',
    contact: 'Phone',
    no_party_branch: 'No party branch on record',
    staff: 'Grid staff',
    role_grid_leader: 'Grid leader',
    role_police_officer: 'Police officer',
    role_full_time_worker: 'Full-time grid worker',
    role_part_time_worker: 'Part-time grid workers',
    no_staff: 'No staff on record',
    boundary_version: 'Boundary version',
    version_line: 'Version {v}, valid from {date}',
    reports: 'Reports (all time)',
    reports_total: 'Total',
    no_reports: 'No reports',
    error_prefix: 'Could not load data: ',
    error_network: 'cannot reach the server',
    error_http: 'the server answered {status}',
    error_reload: 'Reload',
    error_dismiss: 'Dismiss',
    map_label: 'Grid map of Wuhai',
  },
};

/** Words for the zoom hint: what appears at the next zoom threshold. */
const NEXT_LEVEL = {
  zh: { street: '街道', community: '社区', grid: '网格' },
  en: { street: 'streets', community: 'communities', grid: 'grids' },
};

/**
 * The string `key` in language `lang`, with `{name}` placeholders replaced from `params`.
 * A missing key shows as the key itself, so a gap is visible rather than silently blank.
 */
export function t(lang, key, params = {}) {
  const table = STRINGS[lang] ?? STRINGS[DEFAULT_LANGUAGE];
  const text = table[key] ?? STRINGS[DEFAULT_LANGUAGE][key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

export function nextLevelWord(lang, level) {
  return (NEXT_LEVEL[lang] ?? NEXT_LEVEL[DEFAULT_LANGUAGE])[level] ?? level;
}

/** Numbers with the locale's grouping (12,345), the same in both languages. */
export function formatNumber(lang, n) {
  return new Intl.NumberFormat(HTML_LANG[lang] ?? 'zh-CN').format(n);
}

/** The language to start with: `?lang=` wins over the remembered choice, which wins over Chinese. */
export function initialLanguage(storageKey) {
  const fromUrl = new URLSearchParams(window.location.search).get('lang');
  if (LANGUAGES.includes(fromUrl)) return fromUrl;
  try {
    const stored = window.localStorage.getItem(storageKey);
    if (LANGUAGES.includes(stored)) return stored;
  } catch {
    // localStorage can throw in private modes or sandboxed frames; fall back to the default.
  }
  return DEFAULT_LANGUAGE;
}
