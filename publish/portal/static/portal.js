// The portal's scripts: the air map, the catalogue filter and the time-series chart. Each page
// is complete without them (tables, lists and download links are plain HTML); these add to it.
const byId = (id) => document.getElementById(id);
const lang = document.documentElement.lang || 'ko';

function showOrigin() {
  // API snippets name the address the page is served from, when it is served over HTTP.
  if (!location.protocol.startsWith('http')) return;
  for (const el of document.querySelectorAll('[data-origin]')) el.textContent = location.origin;
}

function airMap() {
  const el = byId('map');
  if (!el || !window.L) return;
  const { stations, colours } = JSON.parse(byId('stations-data').textContent);
  const districts = JSON.parse(byId('districts-data').textContent);
  const map = L.map(el, { scrollWheelZoom: false, keyboard: true });
  const tiles = el.dataset.tiles;
  if (tiles) L.tileLayer(tiles, { attribution: el.dataset.attribution, maxZoom: 18 }).addTo(map);
  const outlines = L.geoJSON(districts, {
    style: { color: '#3d3d3d', weight: 2, fillColor: '#efece4', fillOpacity: tiles ? 0.15 : 1 },
    onEachFeature: (f, layer) => layer.bindTooltip(lang === 'ko' ? f.properties.name : f.properties.name_eng),
  }).addTo(map);
  map.fitBounds(outlines.getBounds(), { padding: [8, 8] });
  let shown = 0;
  for (const s of stations) {
    if (s.lat == null || s.lon == null) continue;
    const grade = s.cai_grade || 0;
    const name = lang === 'ko' ? s.name_ko : s.name_en;
    const gradeName = (lang === 'ko' ? s.cai_grade_ko : s.cai_grade_en) || '–';
    L.circleMarker([s.lat, s.lon], {
      radius: 9, color: '#1b1b1b', weight: 1, fillColor: colours[grade], fillOpacity: 0.95,
      className: `station g${grade}`,
    }).bindTooltip(`${name}: ${gradeName} (CAI ${s.cai ?? '–'}, ${s.time})`).addTo(map);
    shown += 1;
  }
  el.dataset.stations = String(shown);
}

function catalogueFilter() {
  const list = byId('datasets');
  if (!list) return;
  const q = byId('q'), licence = byId('licence'), frequency = byId('frequency');
  const params = new URLSearchParams(location.search);
  q.value = params.get('q') || '';
  licence.value = params.get('licence') || '';
  frequency.value = params.get('frequency') || '';
  const apply = () => {
    const words = q.value.toLowerCase().split(/\s+/).filter(Boolean);
    let n = 0;
    for (const li of list.children) {
      const ok = words.every((w) => li.dataset.search.includes(w))
        && (!licence.value || li.dataset.licence === licence.value)
        && (!frequency.value || li.dataset.frequency === frequency.value);
      li.hidden = !ok;
      n += ok ? 1 : 0;
    }
    byId('count').firstElementChild.textContent = String(n);
  };
  for (const el of [q, licence, frequency]) el.addEventListener('input', apply);
  apply();
}

async function chart() {
  const fig = byId('chart');
  if (!fig || !window.uPlot) return;
  try {
    // The published Parquet, read in the browser through HTTP Range requests (hyparquet; zstd by fzstd).
    const { asyncBufferFromUrl, cachedAsyncBuffer, parquetReadObjects } = await import('hyparquet');
    const { decompress } = await import('fzstd');
    const compressors = { ZSTD: (input, outputLength) => decompress(input, new Uint8Array(outputLength)) };
    const url = new URL(fig.dataset.parquet, location.href).href;
    const file = cachedAsyncBuffer(await asyncBufferFromUrl({ url }));
    const entity = fig.dataset.entity, metrics = fig.dataset.metrics.split(',');
    const rows = await parquetReadObjects({ file, columns: [entity, 'period_start', ...metrics], compressors });
    const entities = [...new Set(rows.map((r) => r[entity]))].sort();
    const pick = byId('chart-entity'), metric = byId('chart-metric');
    pick.replaceChildren(...entities.map((e) => new Option(e, e)));
    metric.replaceChildren(...metrics.map((m) => new Option(m, m)));
    // Start on a series that has values, so the first view is not empty.
    const first = rows.find((r) => metrics.some((m) => r[m] != null));
    if (first) {
      pick.value = first[entity];
      metric.value = metrics.find((m) => first[m] != null);
    }
    const plotEl = byId('chart-plot');
    let plot = null;
    const draw = () => {
      const picked = rows.filter((r) => r[entity] === pick.value)
        .sort((a, b) => a.period_start - b.period_start);
      const xs = picked.map((r) => r.period_start.getTime() / 1000);
      const ys = picked.map((r) => (r[metric.value] == null ? null : Number(r[metric.value])));
      if (plot) plot.destroy();
      plot = new uPlot({
        width: Math.min(plotEl.clientWidth || 800, 960), height: 320,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Asia/Seoul'),
        series: [{}, { label: `${metric.value} · ${pick.value}`, stroke: '#1e6fd9', width: 2, spanGaps: false }],
        axes: [{}, { label: metric.value }],
      }, [xs, ys], plotEl);
      fig.dataset.points = String(ys.filter((y) => y != null).length);
    };
    pick.addEventListener('change', draw);
    metric.addEventListener('change', draw);
    draw();
    fig.dataset.state = 'ready';
  } catch (err) {
    fig.dataset.state = 'error';
    fig.querySelector('figcaption').textContent += ` (${err})`;
    throw err;
  }
}

showOrigin();
airMap();
catalogueFilter();
chart();
