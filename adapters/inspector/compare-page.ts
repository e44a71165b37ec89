import { CHART_SCRIPT, INSPECTOR_STYLE } from './chart-script.js';

/**
 * The comparison page of `warmvm inspect A B`: two recorded runs side by side. Each machine's
 * statechart lit by both runs (a state or an arrow in A's colour, B's, or both's, with each run's
 * time), the two paths, where B was slower and faster, and a side-by-side waterfall: one row per
 * state of `warmvm trace diff`, A's bar and B's on one time axis. Self-contained like the live page:
 * it reads its one message and elkjs from its own server.
 */
export const COMPARE_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>warmvm inspector: two runs compared</title>
<style>
${INSPECTOR_STYLE}
  #status.slower { background: #c0392b; } #status.faster { background: #1f8a4c; } #status.same { background: #5b6b8c; }
  .run { margin-bottom: 8px; } .run .file { font: 12px ui-monospace, monospace; word-break: break-all; }
  .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
  .swatch.a { background: #2d6cdf; } .swatch.b { background: #d35400; } .swatch.both { background: #6c3fb5; }
  .path { font: 12px ui-monospace, monospace; } .path .step { white-space: nowrap; } .path .step.failed { color: #c0392b; font-weight: 600; }
  .path .step.only { text-decoration: underline; text-decoration-style: dotted; }
  #legend { font-size: 12px; color: #33415c; margin: 0 0 6px; display: flex; gap: 14px; }
  ul.phases { margin: 2px 0 6px; padding-left: 18px; font: 12px ui-monospace, monospace; }
  .node.in-a rect.box { fill: #dfe9fb; stroke: #2d6cdf; stroke-width: 2; }
  .node.in-b rect.box { fill: #fdebd9; stroke: #d35400; stroke-width: 2; }
  .node.in-both rect.box { fill: #ece4f7; stroke: #6c3fb5; stroke-width: 2; }
  .node.in-a text.info, .node.in-b text.info, .node.in-both text.info { fill: #1d2433; }
  .edge.taken-a path { stroke: #2d6cdf; stroke-width: 2.6; stroke-dasharray: none; }
  .edge.taken-b path { stroke: #d35400; stroke-width: 2.6; stroke-dasharray: none; }
  .edge.taken-both path { stroke: #6c3fb5; stroke-width: 2.6; stroke-dasharray: none; }
  .edge.taken-a text, .edge.taken-b text, .edge.taken-both text { font-weight: 600; }
  #sideBySide svg { width: 100%; height: auto; display: block; }
  .cmp-row text { font: 11px ui-monospace, monospace; fill: #33415c; }
  .cmp-row .cmp-bar-a { fill: #2d6cdf; } .cmp-row .cmp-bar-b { fill: #d35400; }
  .cmp-row .cmp-bar-a.failed, .cmp-row .cmp-bar-b.failed { stroke: #c0392b; stroke-width: 2; }
  .cmp-row.only-a .label, .cmp-row.only-b .label { font-style: italic; }
  .cmp-row .diff.slower { fill: #c0392b; } .cmp-row .diff.faster { fill: #1f8a4c; }
  .cmp-row .band { fill: transparent; } .cmp-row:hover .band { fill: #eef3fd; }
  .cmp-head text { font: 600 11px system-ui, sans-serif; fill: #33415c; }
</style>
</head>
<body>
<header><h1 id="title">warmvm inspector</h1><span id="status">loading</span><span id="note"></span></header>
<main>
  <div><div id="chartPanel"><div id="tabs" role="tablist" aria-label="machines"></div><div id="legend"><span><span class="swatch a"></span>only A</span><span><span class="swatch b"></span>only B</span><span><span class="swatch both"></span>both runs</span></div><div id="crumbs"></div><div id="chart"></div></div></div>
  <div>
    <section class="panel"><h2>The two runs</h2><div id="runs"></div></section>
    <section class="panel"><h2>Where B differs from A</h2><div id="differs"></div></section>
  </div>
</main>
<section class="panel" id="waterfallPanel"><h2>Side by side, state by state</h2><div id="sideBySide"></div></section>
<script>
'use strict';
${CHART_SCRIPT}
let view = null, layoutError = '', shown = null, lastFocus = '';
const layouts = {};
let elkLoaded = false;
loadElk(() => { elkLoaded = true; if (view) layOut(); }, (error) => { layoutError = error; render(); });

function layOut() {
  layOutMachines(view.model, (id, laid) => { layouts[id] = laid; render(); }, (error) => { layoutError = error; render(); });
}

const signed = (ms) => (ms > 0 ? '+' : ms < 0 ? '−' : '±') + seconds(Math.abs(ms));
const stateName = (row) => row.state + (row.occurrence > 1 ? ' #' + row.occurrence : '');
const ratioText = (ratio) => ratio === undefined ? '' : ratio.toFixed(2) + '×';

function render() {
  if (!view) return;
  byId('title').textContent = view.title;
  const { diffMs, ratio } = view.summary;
  const status = byId('status');
  status.className = diffMs > 0 ? 'slower' : diffMs < 0 ? 'faster' : 'same';
  status.textContent = diffMs === 0 ? 'B as long as A' : 'B ' + signed(diffMs) + (ratio !== undefined ? ' (' + ratioText(ratio) + ')' : '');
  byId('note').textContent = 'two recorded runs: A ' + seconds(view.a.totalMs) + ', B ' + seconds(view.b.totalMs);
  byId('runs').innerHTML = runHtml('A', 'a', view.a) + runHtml('B', 'b', view.b);
  byId('differs').innerHTML = differsHtml();
  drawChart();
  byId('sideBySide').innerHTML = drawSideBySide();
}

function runHtml(letter, key, run) {
  const other = key === 'a' ? view.b : view.a;
  const otherStates = new Set(other.path.map((step) => step.state));
  const steps = run.path.map((step) => '<span class="step' + (step.failed ? ' failed' : '') + (otherStates.has(step.state) ? '' : ' only') + '" data-step="' + text(step.state) + '">'
    + text(step.state.slice(step.state.indexOf('.') + 1)) + (step.failed ? ' (failed)' : '') + '</span>').join(' → ');
  return '<div class="run" data-run="' + key + '"><div><span class="swatch ' + key + '"></span><b>' + letter + '</b>: ' + text(seconds(run.totalMs)) + ', ' + run.states + ' states, ' + text(run.end.summary) + '</div>'
    + '<div class="file">' + text(run.file) + '</div>'
    + '<div class="path" data-path="' + key + '">' + (steps || '(no states)') + '</div>'
    + (run.end.fallbackReason ? '<div class="bad">fell back: ' + text(run.end.fallbackReason) + '</div>' : '') + '</div>';
}

function differsHtml() {
  const { diffMs, ratio, slower, faster } = view.summary;
  const phase = (p) => '<li data-phase="' + text(p.state + '#' + p.occurrence) + '">' + text(stateName(p)) + ' ' + text(signed(p.diffMs)) + (p.only ? ' (only in ' + p.only.toUpperCase() + ')' : '') + '</li>';
  const head = diffMs === 0 ? 'B took as long as A' : 'B took ' + seconds(Math.abs(diffMs)) + ' ' + (diffMs > 0 ? 'longer' : 'less') + ' than A' + (ratio !== undefined ? ' (' + ratioText(ratio) + ')' : '');
  return '<div id="verdict">' + text(head) + '</div>'
    + (slower.length ? '<div>B slower in (each state\\'s own time, its child machine\\'s left out):</div><ul class="phases" id="slower">' + slower.map(phase).join('') + '</ul>' : '')
    + (faster.length ? '<div>B faster in:</div><ul class="phases" id="faster">' + faster.map(phase).join('') + '</ul>' : '');
}

/** The time each run spent in each state, all its entries into it together. */
function spentBy(key) {
  const out = {};
  for (const row of view.rows) { const ms = row[key + 'Ms']; if (ms !== undefined) out[row.state] = (out[row.state] || 0) + ms; }
  return out;
}

function drawChart() {
  const spentA = spentBy('a'), spentB = spentBy('b');
  const entered = (machine, spent) => machine.states.some((state) => spent[state.id] !== undefined);
  shown = shown || view.model.root;
  byId('tabs').innerHTML = view.model.machines.map((machine) => {
    const runs = [entered(machine, spentA) ? 'A' : '', entered(machine, spentB) ? 'B' : ''].filter(Boolean).join(' ');
    return '<button role="tab" class="' + (machine.id === shown ? 'shown' : '') + '" data-tab="' + text(machine.id) + '" aria-selected="' + (machine.id === shown) + '">' + text(machine.id) + (runs ? '<span class="at">' + runs + '</span>' : '') + '</button>';
  }).join('');
  // The state that ran this machine in these runs (start.resume, not start.waking), else any that can.
  const invokers = view.model.machines.flatMap((machine) => machine.states).filter((state) => state.invokes === shown);
  const invoker = invokers.find((state) => spentA[state.id] !== undefined || spentB[state.id] !== undefined) || invokers[0];
  byId('crumbs').textContent = invoker ? view.model.root + ' › ' + invoker.id + ' ▸ ' + shown : shown;
  const machine = view.model.machines.find((m) => m.id === shown);
  const laid = layouts[shown];
  if (!machine) return;
  if (!laid) {
    byId('chart').innerHTML = '<p>' + (layoutError ? 'The statechart cannot be laid out: ' + text(layoutError) : 'laying out the statechart…') + '</p>';
    return;
  }
  const takenA = new Set(view.a.taken), takenB = new Set(view.b.taken);
  const arrows = new Map(arrowsOf(machine).map((arrow) => [arrow.id, arrow]));
  const edgeSvg = (laid.edges || []).map((edge) => {
    const arrow = arrows.get(edge.id);
    const inA = arrow.edges.some((e) => takenA.has(e.id)), inB = arrow.edges.some((e) => takenB.has(e.id));
    const which = inA && inB ? 'both' : inA ? 'a' : inB ? 'b' : '';
    const label = (edge.labels || [])[0];
    const classes = ['edge'].concat(arrow.kinds.map((k) => 'k-' + k), which ? ['taken-' + which] : []).join(' ');
    const said = which === 'both' ? ' (taken in A and B)' : which ? ' (taken in ' + which.toUpperCase() + ' only)' : '';
    const head = which === 'both' ? 'headBoth' : which === 'a' ? 'headA' : which === 'b' ? 'headB' : 'head';
    return '<g class="' + classes + '" data-edge="' + text(arrow.id) + '" data-kinds="' + arrow.kinds.join(' ') + '" data-taken-a="' + inA + '" data-taken-b="' + inB + '" role="img" aria-label="' + text(arrow.from + ' → ' + arrow.to + ': ' + arrow.label + said) + '">'
      + '<path d="' + edgePath(edge) + '" marker-end="url(#' + head + ')"/>'
      + (label ? '<text x="' + label.x.toFixed(1) + '" y="' + (label.y + 10).toFixed(1) + '">' + text(arrow.label) + '</text>' : '') + '</g>';
  }).join('');
  const nodeSvg = (laid.children || []).map((node) => {
    const state = machine.states.find((s) => s.id === node.id);
    const a = spentA[node.id], b = spentB[node.id];
    const which = a !== undefined && b !== undefined ? 'both' : a !== undefined ? 'a' : b !== undefined ? 'b' : 'none';
    const classes = ['node'];
    if (state.transient) classes.push('transient');
    if (state.final) classes.push('final');
    if (which !== 'none') classes.push('in-' + which);
    const info = which === 'none' ? (state.boundMs ? '≤ ' + seconds(state.boundMs) : state.final ? 'final' : 'neither run') : 'A ' + (a === undefined ? '—' : seconds(a)) + ' · B ' + (b === undefined ? '—' : seconds(b));
    const opens = state.invokes ? ' data-open="' + text(state.invokes) + '"' : '';
    return '<g class="' + classes.join(' ') + '" data-state="' + text(state.id) + '" data-in="' + which + '"' + (a !== undefined ? ' data-a-ms="' + Math.round(a) + '"' : '') + (b !== undefined ? ' data-b-ms="' + Math.round(b) + '"' : '') + opens
      + ' role="img" aria-label="' + text(state.id + ': ' + info) + '" transform="translate(' + node.x.toFixed(1) + ' ' + node.y.toFixed(1) + ')">'
      + '<rect class="box" width="' + node.width + '" height="' + BOX_HEIGHT + '" rx="' + (state.final ? 14 : 6) + '"/>'
      + '<text class="name" x="10" y="17">' + text(state.name) + (state.invokes ? ' ▸' : '') + '</text><text class="info" x="10" y="32">' + text(info) + '</text></g>';
  }).join('');
  byId('chart').innerHTML = '<svg role="img" aria-label="statechart of ' + text(shown) + ', lit by both runs" data-chart="' + text(shown) + '" width="' + Math.ceil(laid.width) + '" height="' + Math.ceil(laid.height) + '" viewBox="0 0 ' + Math.ceil(laid.width) + ' ' + Math.ceil(laid.height) + '"><defs>' + arrowHeads() + '</defs>' + edgeSvg + nodeSvg + '</svg>';
  // Scrolled, once per machine, to where the runs part: the first state only one of them entered.
  if (shown !== lastFocus) {
    lastFocus = shown;
    const lit = (laid.children || []).filter((node) => spentA[node.id] !== undefined || spentB[node.id] !== undefined);
    const focus = lit.find((node) => (spentA[node.id] === undefined) !== (spentB[node.id] === undefined)) || lit[0];
    const chart = byId('chart');
    if (focus) {
      chart.scrollLeft = Math.max(0, focus.x + focus.width / 2 - chart.clientWidth / 2);
      chart.scrollTop = Math.max(0, focus.y + BOX_HEIGHT / 2 - chart.clientHeight / 3);
    }
  }
}

/** One row per state of the diff: its name, A's bar and B's on one time axis, B less A and B over A. */
function drawSideBySide() {
  const LABEL = 250, TRACK = 340, GAP = 24, ROW = 18, TOP = 34, DIFF = 170;
  const span = Math.max(1, view.a.totalMs, view.b.totalMs);
  const xA = (ms) => LABEL + (Math.min(ms, span) / span) * TRACK;
  const xB = (ms) => LABEL + TRACK + GAP + (Math.min(ms, span) / span) * TRACK;
  const steps = [100, 200, 500, 1000, 2000, 5000, 10000, 20000, 30000, 60000, 120000, 300000];
  const step = steps.find((s) => span / s <= 6) || 600000;
  const bottom = TOP + view.rows.length * ROW;
  let axis = '';
  for (let t = 0; t <= span; t += step) {
    for (const x of [xA, xB]) axis += '<line x1="' + x(t).toFixed(1) + '" x2="' + x(t).toFixed(1) + '" y1="26" y2="' + bottom + '"/><text x="' + x(t).toFixed(1) + '" y="24" text-anchor="middle">' + (t / 1000) + ' s</text>';
  }
  const head = '<g class="cmp-head"><text x="4" y="11">state</text><text x="' + LABEL + '" y="11">A: ' + text(seconds(view.a.totalMs)) + '</text><text x="' + (LABEL + TRACK + GAP) + '" y="11">B: ' + text(seconds(view.b.totalMs)) + '</text><text x="' + (LABEL + 2 * TRACK + GAP + 8) + '" y="11">B−A, B/A</text></g>';
  const bar = (key, row, y, x) => {
    const ms = row[key + 'Ms'], start = row[key + 'StartMs'];
    if (ms === undefined) return '';
    const failed = row[key + 'Failed'];
    return '<rect class="cmp-bar-' + key + (failed ? ' failed' : '') + '" data-bar="' + key + '" x="' + x(start).toFixed(2) + '" y="' + (y + 4) + '" width="' + Math.max(1.5, x(start + ms) - x(start)).toFixed(2) + '" height="' + (ROW - 8) + '" rx="2"><title>' + text('in ' + key.toUpperCase() + ': ' + seconds(ms) + ' from +' + seconds(start) + (failed ? ', left by a failure' : '')) + '</title></rect>';
  };
  const rows = view.rows.map((row, index) => {
    const y = TOP + index * ROW;
    const classes = ['cmp-row'];
    if (row.only) classes.push('only-' + row.only);
    const change = row.only ? 'only in ' + row.only.toUpperCase() : signed(row.diffMs) + (row.ratio !== undefined ? '  ' + ratioText(row.ratio) : '');
    const tone = row.diffMs > 0 ? 'slower' : row.diffMs < 0 ? 'faster' : '';
    return '<g class="' + classes.join(' ') + '" data-row="' + index + '" data-state="' + text(row.state) + '" data-occurrence="' + row.occurrence + '" data-depth="' + row.depth + '"'
      + (row.aMs !== undefined ? ' data-a-ms="' + row.aMs + '"' : '') + (row.bMs !== undefined ? ' data-b-ms="' + row.bMs + '"' : '') + ' data-diff-ms="' + row.diffMs + '"' + (row.only ? ' data-only="' + row.only + '"' : '') + '>'
      + '<rect class="band" x="0" y="' + y + '" width="' + (LABEL + 2 * TRACK + GAP + DIFF) + '" height="' + ROW + '"/>'
      + '<text class="label" x="' + (4 + row.depth * 14) + '" y="' + (y + 13) + '">' + text(stateName(row)) + '</text>'
      + bar('a', row, y, xA) + bar('b', row, y, xB)
      + '<text class="diff ' + tone + '" x="' + (LABEL + 2 * TRACK + GAP + 8) + '" y="' + (y + 13) + '">' + text(change) + '</text></g>';
  }).join('');
  const width = LABEL + 2 * TRACK + GAP + DIFF;
  return '<svg role="img" aria-label="the two runs side by side" data-side-by-side="true" data-span-ms="' + span + '" data-track="' + TRACK + '" viewBox="0 0 ' + width + ' ' + (bottom + 6) + '" width="' + width + '" height="' + (bottom + 6) + '">' + head + '<g class="wf-axis">' + axis + '</g>' + rows + '</svg>';
}

byId('tabs').addEventListener('click', (event) => { const tab = event.target.closest('[data-tab]'); if (tab) { shown = tab.getAttribute('data-tab'); render(); } });
byId('chart').addEventListener('click', (event) => { const node = event.target.closest('[data-open]'); if (node) { shown = node.getAttribute('data-open'); render(); } });
fetch('messages').then((response) => response.json()).then((messages) => {
  view = messages.find((message) => message.kind === 'compare');
  if (!view) throw new Error('no comparison in the messages');
  if (elkLoaded) layOut();
  render();
}).catch((error) => { byId('status').textContent = 'failed'; byId('note').textContent = 'the comparison did not load: ' + error.message; });
</script>
</body>
</html>
`;
