/**
 * What the inspector's two pages (one run, and two compared) share: their style, and the script
 * that lays the machines out with elkjs and draws arrows. Page source, as text: the pages are
 * self-contained documents, with nothing loaded but their own server's.
 */
export const INSPECTOR_STYLE = `  :root { font: 14px/1.35 system-ui, sans-serif; color: #1d2433; background: #f4f6fa; }
  body { margin: 0; }
  header { display: flex; gap: 16px; align-items: center; padding: 10px 18px; background: #1d2433; color: #fff; }
  header h1 { font-size: 16px; margin: 0; font-weight: 600; }
  #status { padding: 3px 10px; border-radius: 12px; font-weight: 600; background: #5b6b8c; }
  #status.healthy, #status.stopped { background: #1f8a4c; } #status.failed { background: #c0392b; } #status.running { background: #2d6cdf; }
  #note { font-size: 13px; opacity: .85; }
  main { display: grid; grid-template-columns: minmax(420px, 1.5fr) minmax(380px, 1fr); gap: 16px; padding: 16px 18px; }
  section.panel { background: #fff; border: 1px solid #c9d1e0; border-radius: 8px; padding: 8px 10px; margin-bottom: 12px; }
  section.panel h2 { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: #5b6b8c; margin: 0 0 6px; }
  #fallback { display: none; border-color: #c0392b; background: #fde5e2; }
  #fallback.shown { display: block; }
  .kv { display: grid; grid-template-columns: 110px 1fr; gap: 2px 10px; font-size: 13px; }
  .kv .k { color: #5b6b8c; } .kv .v { font-family: ui-monospace, monospace; word-break: break-word; }
  .bad { color: #c0392b; }
  table { border-collapse: collapse; width: 100%; font-size: 12px; }
  td, th { text-align: left; padding: 2px 6px; border-bottom: 1px solid #eef0f5; vertical-align: top; }
  td.mono, th.mono { font-family: ui-monospace, monospace; white-space: nowrap; }
  tr.current { background: #e3edff; }
  .warning { color: #b86e00; font-weight: 600; }
  #replay { display: none; gap: 10px; align-items: center; margin-bottom: 10px; }
  #replay.shown { display: flex; } #replay input { flex: 1; }
  /* A grid item grows to its content by default: the wide statechart scrolls inside its column instead. */
  main > div { min-width: 0; }
  #chartPanel { border: 1px solid #c9d1e0; border-radius: 8px; background: #fff; padding: 8px; }
  #tabs { display: flex; gap: 6px; flex-wrap: wrap; margin-bottom: 6px; align-items: center; }
  #tabs button { font: 12px ui-monospace, monospace; border: 1px solid #c9d1e0; background: #f4f6fa; border-radius: 6px; padding: 3px 8px; cursor: pointer; color: #33415c; }
  #tabs button.inchain { border-color: #2d6cdf; }
  #tabs button.shown { background: #2d6cdf; color: #fff; border-color: #2d6cdf; }
  #tabs button .at { opacity: .75; margin-left: 6px; }
  #crumbs { font: 12px ui-monospace, monospace; color: #5b6b8c; margin-bottom: 4px; }
  ul.pending { font: 12px ui-monospace, monospace; } ul.pending .active { font-weight: 700; color: #2d6cdf; } ul.pending .visited { color: #1d4fb0; }
  /* At its own size, scrolled: shrunk to the column, a wide machine's labels would be unreadable. */
  #chart { overflow: auto; max-height: 78vh; }
  #chart svg { display: block; }
  .node rect.box { fill: #fbfcfe; stroke: #b8c2d6; stroke-width: 1; }
  .node.transient rect.box { stroke-dasharray: 4 3; }
  .node.visited rect.box { fill: #dfe9fb; stroke: #7d9fd9; }
  .node.active rect.box { fill: #e3edff; stroke: #2d6cdf; stroke-width: 2.5; }
  .node.active.warn rect.box { fill: #fff3dc; stroke: #e08e0b; }
  .node.active.over rect.box { fill: #fde5e2; stroke: #c0392b; }
  .node.active.final-ok rect.box { fill: #e1f5e8; stroke: #1f8a4c; }
  .node.active.final-failed rect.box { fill: #fde5e2; stroke: #c0392b; }
  .node.final rect.box { stroke-width: 2; }
  .node text.name { font: 600 12px ui-monospace, monospace; fill: #1d2433; }
  .node text.info { font: 11px system-ui, sans-serif; fill: #5b6b8c; }
  .node.active text.info, .node.visited text.info { fill: #1d2433; }
  .node .meter { fill: #d6dcea; } .node .meter-fill { fill: #2d6cdf; }
  .node.warn .meter-fill { fill: #e08e0b; } .node.over .meter-fill { fill: #c0392b; }
  .node[data-open] { cursor: pointer; }
  .edge path { fill: none; stroke: #9aa6bd; stroke-width: 1.2; }
  .edge.k-error path, .edge.k-bound path, .edge.k-cancel path { stroke: #c9a0a0; stroke-dasharray: 3 3; }
  .edge.k-fallback path { stroke: #c0392b; stroke-width: 1.6; stroke-dasharray: 6 3; }
  .edge.taken path { stroke: #2d6cdf; stroke-width: 2.6; stroke-dasharray: none; }
  .edge.k-fallback.taken path { stroke: #c0392b; stroke-width: 3; }
  .edge text { font: 10px ui-monospace, monospace; fill: #7a869e; }
  .edge.taken text { fill: #1d4fb0; font-weight: 600; } .edge.k-fallback text { fill: #c0392b; }
  #waterfallPanel { margin: 0 18px 16px; }
  #waterfall svg { width: 100%; height: auto; display: block; }
  .wf-row text { font: 11px ui-monospace, monospace; fill: #33415c; }
  .wf-row .track { fill: #eef0f5; stroke: #c9d1e0; stroke-dasharray: 3 2; }
  .wf-row .limit { stroke: #7a869e; stroke-width: 1.5; }
  .wf-row .wf-bar { fill: #2d6cdf; } .wf-row.d1 .wf-bar { fill: #5b8def; } .wf-row.d2 .wf-bar { fill: #8fb0f3; }
  .wf-row.open .wf-bar { fill: #1f8a4c; } .wf-row.warn .wf-bar { fill: #e08e0b; } .wf-row.over .wf-bar { fill: #c0392b; }
  .wf-row.future { opacity: .35; }
  .wf-axis line { stroke: #eef0f5; } .wf-axis text { font: 10px system-ui, sans-serif; fill: #7a869e; }
  .wf-cursor { stroke: #c0392b; stroke-width: 1.5; }
`;

/**
 * Page helpers: `byId`, `text` (HTML-escaped), `seconds`, `arrowsOf` (a machine's edges merged by
 * their two states), `layOutMachines` (elkjs, each machine reported as it is laid out), `loadElk`,
 * `edgePath` and `arrowHeads` (the SVG of an arrow and its heads).
 */
export const CHART_SCRIPT = `
const byId = (id) => document.getElementById(id);
const text = (value) => String(value).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const seconds = (ms) => (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
const BOX_HEIGHT = 44;
const boxWidth = (state) => Math.max(120, state.name.length * 8 + 28);

/** A machine's edges merged by their two states: one arrow per pair, its label each event's. */
function arrowsOf(machine) {
  const byPair = new Map();
  for (const edge of machine.edges) {
    const key = edge.from + '->' + edge.to;
    if (!byPair.has(key)) byPair.set(key, { id: key, from: edge.from, to: edge.to, edges: [] });
    byPair.get(key).edges.push(edge);
  }
  return [...byPair.values()].map((arrow) => ({ ...arrow, label: [...new Set(arrow.edges.map((edge) => edge.label))].join(' · '), kinds: [...new Set(arrow.edges.map((edge) => edge.kind))] }));
}

/** elkjs (1.6 MB) from the page's own server, loaded beside the event stream, not before it. */
function loadElk(loaded, failed) {
  const elkScript = document.createElement('script');
  elkScript.src = 'elk.js';
  elkScript.onload = loaded;
  elkScript.onerror = () => failed('the layout library (elk.js) did not load');
  document.head.appendChild(elkScript);
}

/** Each machine of the model laid out top to bottom, given to laidOut(id, layout) as it is done. */
function layOutMachines(model, laidOut, failed) {
  if (typeof ELK === 'undefined') { failed('the layout library (elk.js) did not load'); return; }
  const elk = new ELK();
  for (const machine of model.machines) {
    const graph = {
      id: machine.id,
      layoutOptions: {
        'elk.algorithm': 'layered', 'elk.direction': 'DOWN', 'elk.edgeRouting': 'POLYLINE',
        'elk.layered.spacing.nodeNodeBetweenLayers': '44', 'elk.spacing.nodeNode': '26', 'elk.spacing.edgeLabel': '2',
        'elk.layered.spacing.edgeNodeBetweenLayers': '14', 'elk.padding': '[top=8,left=8,bottom=8,right=8]',
      },
      children: machine.states.map((state) => ({ id: state.id, width: boxWidth(state), height: BOX_HEIGHT })),
      edges: arrowsOf(machine).map((arrow) => ({
        id: arrow.id, sources: [arrow.from], targets: [arrow.to],
        labels: [{ id: arrow.id + ':label', text: arrow.label, width: arrow.label.length * 6.1 + 4, height: 12 }],
      })),
    };
    elk.layout(graph).then((laid) => laidOut(machine.id, laid), (error) => failed(String(error)));
  }
}

/** An elkjs edge's route as an SVG path. */
function edgePath(edge) {
  const points = [];
  for (const section of edge.sections || []) { points.push(section.startPoint); for (const bend of section.bendPoints || []) points.push(bend); points.push(section.endPoint); }
  return points.map((p, i) => (i ? 'L' : 'M') + p.x.toFixed(1) + ' ' + p.y.toFixed(1)).join(' ');
}

/** The arrow heads the charts use: plain, taken, the fallback's, and one per compared run. */
function arrowHeads() {
  const marker = (id, color) => '<marker id="' + id + '" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="' + color + '"/></marker>';
  return marker('head', '#9aa6bd') + marker('headTaken', '#2d6cdf') + marker('headFallback', '#c0392b') + marker('headA', '#2d6cdf') + marker('headB', '#d35400') + marker('headBoth', '#6c3fb5');
}
`;
