import { CHART_SCRIPT, INSPECTOR_STYLE } from './chart-script.js';
import { takenEdges } from './taken-edges.js';
import { waterfallRows } from './waterfall-rows.js';

/**
 * The inspector page: one self-contained document (no network but its own server: its events and
 * the layout library elkjs, served from the package), so it works offline. It rebuilds everything
 * from the message list: each machine as a statechart laid out by elkjs in the page (the states
 * passed through lit with their times, the active one against its bound, the edges taken marked), a
 * waterfall of the run, the event log, the last exchanges, the fallback reason. A recorded run gets
 * a slider to step through it, moving a cursor along the waterfall.
 *
 * The page lays out in the browser, not in warmvm: a start with --inspect spends nothing on it.
 * `waterfallRows` and `takenEdges` are the unit-tested modules' own functions, put in as source.
 */
export const INSPECTOR_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>warmvm inspector</title>
<style>
${INSPECTOR_STYLE}</style>
</head>
<body>
<header><h1 id="title">warmvm inspector</h1><span id="status">connecting</span><span id="note"></span></header>
<main>
  <div><div id="replay"><span>step</span><input id="cursor" type="range" min="0" value="0"><span id="cursorText"></span></div>
    <div id="chartPanel"><div id="tabs" role="tablist" aria-label="machines"></div><div id="crumbs"></div><div id="chart"></div></div></div>
  <div>
    <section class="panel" id="fallback"><h2>Fallback</h2><div id="fallbackText"></div></section>
    <section class="panel"><h2>Now</h2><div class="kv" id="now"></div></section>
    <section class="panel"><h2>Last exchanges</h2><div class="kv" id="exchanges"></div></section>
    <section class="panel"><h2>Events</h2><table><thead><tr><th class="mono">at</th><th>state entered</th><th>left after</th><th>event</th></tr></thead><tbody id="events"></tbody></table></section>
  </div>
</main>
<section class="panel" id="waterfallPanel"><h2>Waterfall</h2><div id="waterfall"></div></section>
<script>
'use strict';
const messages = [];
let model = null, hello = null, clockOffset = 0, cursor = null;
${CHART_SCRIPT}

const waterfallRows = ${waterfallRows.toString()};
const takenEdges = ${takenEdges.toString()};
/** Each machine's elkjs layout, once: the machines do not change during a run. */
const layouts = {};
let layoutError = '';
/** The machine a person picked to look at; null follows the run's deepest active machine. */
let pinned = null;
/** The machine and state the chart was last scrolled to. */
let lastFocus = '';
// elkjs (1.6 MB) loads beside the event stream, not before it: until it has laid a machine out, the
// machine is drawn as a plain list of its states, lit the same way.
let elkLoaded = false;
loadElk(() => { elkLoaded = true; if (model) layOut(); }, (error) => { layoutError = error; render(); });

function receive(message) {
  messages.push(message);
  if (message.kind === 'hello') { hello = message; model = message.model; clockOffset = message.now - Date.now(); if (elkLoaded) layOut(); }
  render();
}

/** The messages up to the replay cursor (all of them for a live run). */
function visible() {
  if (cursor === null) return messages;
  let entries = 0;
  const out = [];
  for (const message of messages) {
    if (message.kind === 'entry') { if (entries === cursor + 1) break; entries += 1; }
    out.push(message);
  }
  return out;
}

function render() {
  if (!model) return;
  const shown = visible();
  const entries = shown.filter((m) => m.kind === 'entry');
  const end = shown.find((m) => m.kind === 'end');
  const all = messages.filter((m) => m.kind === 'entry');
  byId('title').textContent = hello.title;
  const replay = byId('replay');
  if (!hello.live) {
    replay.classList.add('shown');
    const input = byId('cursor');
    input.max = String(Math.max(0, all.length - 1));
    if (cursor === null) input.value = input.max;
    byId('cursorText').textContent = (Number(input.value) + 1) + ' of ' + all.length;
  }
  const status = byId('status');
  const finished = end && (hello.live || cursor === null || cursor >= all.length - 1);
  status.className = finished ? end.end.outcome : 'running';
  status.textContent = finished ? end.end.outcome : (hello.live ? 'running' : 'replaying');
  byId('note').textContent = finished && hello.live ? 'The run is over; this page keeps it. Press Ctrl-C where warmvm runs to end it.' : (hello.live ? 'live' : 'recorded run');
  const active = activeStates(entries);
  const visited = new Set(entries.map((e) => e.entry.state));
  const now = hello.live && !end ? Date.now() + clockOffset - hello.startedAt : (entries.length ? entries[entries.length - 1].entry.at : 0);
  const states = stateInfo();
  const liveNow = hello.live && !end ? now : undefined;
  // The chart is lit up to the cursor; the waterfall shows the whole recorded run, a cursor on it.
  const shownRows = waterfallRows(entries.map(toRowEntry), states, liveNow);
  const allRows = hello.live ? shownRows : waterfallRows(all.map(toRowEntry), states, undefined);
  drawCharts(active, visited, now, shownRows, entries);
  const cursorAt = hello.live ? (end ? null : now) : (entries.length ? entries[entries.length - 1].entry.at : 0);
  byId('waterfall').innerHTML = drawWaterfall(allRows, cursorAt, hello.live ? null : cursorAt);
  const fallback = (end && end.end.fallbackReason) || fallbackOf(entries);
  byId('fallback').classList.toggle('shown', Boolean(fallback));
  byId('fallbackText').textContent = fallback || '';
  const deepest = active.length ? active[active.length - 1] : null;
  const rows = [];
  if (deepest) {
    const state = stateOf(deepest.state);
    rows.push(['state', deepest.state]);
    rows.push(['for', seconds(Math.max(0, now - deepest.at)) + (state && state.boundMs ? ' of its ' + seconds(state.boundMs) + ' bound' : '')]);
  }
  if (end && finished) rows.push(['result', end.end.summary]);
  byId('now').innerHTML = rows.map(([k, v]) => '<div class="k">' + text(k) + '</div><div class="v">' + text(v) + '</div>').join('');
  const last = {};
  for (const m of shown) if (m.kind === 'exchange') last[m.exchange.channel] = m.exchange;
  const names = { qmp: 'QMP', qga: 'guest agent', exec: 'guest-exec', health: 'health' };
  byId('exchanges').innerHTML = ['qmp', 'qga', 'exec', 'health'].map((channel) => {
    const x = last[channel];
    const value = x ? (x.what + ' → ' + x.summary + (x.ms !== undefined ? ' (' + x.ms + ' ms)' : '') + ' at +' + (x.at / 1000).toFixed(3) + 's') : '—';
    return '<div class="k">' + names[channel] + '</div><div class="v' + (x && !x.ok ? ' bad' : '') + '" data-channel="' + channel + '">' + text(value) + '</div>';
  }).join('');
  byId('events').innerHTML = entries.map((m, index) => {
    const e = m.entry;
    const left = e.from ? e.from.slice(e.from.indexOf('.') + 1) + ' ' + e.ms + ' ms' : '';
    const warning = e.warning ? ' <span class="warning">WARNING: ' + text(e.warning) + '</span>' : '';
    return '<tr' + (index === entries.length - 1 ? ' class="current"' : '') + '><td class="mono">+' + (e.at / 1000).toFixed(3) + 's</td><td class="mono">' + text(e.state) + '</td><td class="mono">' + text(left) + '</td><td>' + text(m.summary) + warning + '</td></tr>';
  }).join('');
}

function stateOf(id) {
  for (const machine of model.machines) for (const state of machine.states) if (state.id === id) return state;
  return null;
}

/** The active state of the root, then of the child it runs, and so on: [{state, at}]. */
function activeStates(entries) {
  const out = [];
  let machine = model.root, after = -1;
  for (;;) {
    let found = null;
    for (let i = entries.length - 1; i > after; i -= 1) if (entries[i].entry.machine === machine) { found = i; break; }
    if (found === null) break;
    const entry = entries[found].entry;
    out.push({ state: entry.state, at: entry.at });
    const state = stateOf(entry.state);
    if (!state || !state.invokes) break;
    machine = state.invokes; after = found;
  }
  return out;
}

function fallbackOf(entries) {
  for (const m of entries) {
    const e = m.entry;
    if ((e.state === 'start.coldBoot' || e.state === 'start.settingAside') && (e.from === 'start.resume' || e.from === 'start.capture')) {
      const failure = e.event && e.event.output && e.event.output.failure;
      return failure ? failure.state + ': ' + (failure.code ? failure.code + ' ' : '') + failure.message : m.summary;
    }
  }
  return '';
}

function toRowEntry(m) { return { at: m.entry.at, machine: m.entry.machine, state: m.entry.state, summary: m.summary }; }

function stateInfo() {
  const out = {};
  for (const machine of model.machines) for (const state of machine.states) out[state.id] = { invokes: state.invokes, boundMs: state.boundMs, final: state.final };
  return out;
}

function layOut() {
  layOutMachines(model, (id, laid) => { layouts[id] = laid; render(); }, (error) => { layoutError = error; render(); });
}

function drawCharts(active, visited, now, rows, entries) {
  const chain = [model.root];
  for (const a of active) { const state = stateOf(a.state); if (state && state.invokes) chain.push(state.invokes); }
  const deepest = active.length ? active[active.length - 1].state.split('.')[0] : model.root;
  const shown = pinned || deepest;
  const activeOf = (id) => active.find((a) => a.state.startsWith(id + '.'));
  byId('tabs').innerHTML = model.machines.map((machine) => {
    const here = activeOf(machine.id);
    const classes = [machine.id === shown ? 'shown' : '', chain.includes(machine.id) ? 'inchain' : ''].join(' ');
    return '<button role="tab" class="' + classes + '" data-tab="' + text(machine.id) + '" aria-selected="' + (machine.id === shown) + '">' + text(machine.id) + (here ? '<span class="at">' + text(here.state.slice(machine.id.length + 1)) + '</span>' : '') + '</button>';
  }).join('') + (pinned ? '<button data-tab="" title="show the machine the run is in">follow the run</button>' : '');
  byId('crumbs').textContent = active.map((a) => a.state).join(' › ');
  const spent = {};
  for (const row of rows) spent[row.state] = (spent[row.state] || 0) + (row.end - row.start);
  const machine = model.machines.find((m) => m.id === shown);
  const laid = layouts[shown];
  const here = activeOf(shown);
  if (!machine) return;
  if (!laid) {
    const list = machine.states.map((state) => {
      const isActive = Boolean(here && here.state === state.id);
      return '<li data-state="' + text(state.id) + '"' + (isActive ? ' data-active="true" class="active"' : visited.has(state.id) ? ' class="visited"' : '') + '>' + text(state.name) + '</li>';
    }).join('');
    byId('chart').innerHTML = '<p>' + (layoutError ? 'The statechart cannot be laid out: ' + text(layoutError) : 'laying out the statechart…') + '</p><ul class="pending">' + list + '</ul>';
    return;
  }
  const taken = new Set(takenEdges(machine.edges, entries.map((m) => m.entry)));
  const arrows = new Map(arrowsOf(machine).map((arrow) => [arrow.id, arrow]));
  const edgeSvg = (laid.edges || []).map((edge) => {
    const arrow = arrows.get(edge.id);
    const isTaken = arrow.edges.some((e) => taken.has(e.id));
    const d = edgePath(edge);
    const label = (edge.labels || [])[0];
    const classes = ['edge'].concat(arrow.kinds.map((k) => 'k-' + k), isTaken ? ['taken'] : []).join(' ');
    return '<g class="' + classes + '" data-edge="' + text(arrow.id) + '" data-kinds="' + arrow.kinds.join(' ') + '" data-taken="' + isTaken + '" role="img" aria-label="' + text(arrow.from + ' → ' + arrow.to + ': ' + arrow.label + (isTaken ? ' (taken)' : '')) + '">'
      + '<path d="' + d + '" marker-end="url(#' + (isTaken ? (arrow.kinds.includes('fallback') ? 'headFallback' : 'headTaken') : 'head') + ')"/>'
      + (label ? '<text x="' + label.x.toFixed(1) + '" y="' + (label.y + 10).toFixed(1) + '">' + text(arrow.label) + '</text>' : '') + '</g>';
  }).join('');
  const nodeSvg = (laid.children || []).map((node) => {
    const state = stateOf(node.id);
    const isActive = Boolean(here && here.state === node.id);
    const classes = ['node'];
    if (state.transient) classes.push('transient');
    if (state.final) classes.push('final');
    if (visited.has(node.id)) classes.push('visited');
    let info = state.boundMs ? '≤ ' + seconds(state.boundMs) : (state.final ? 'final' : '');
    let meter = '';
    if (visited.has(node.id)) info = seconds(spent[node.id] || 0) + (state.boundMs ? ' (≤ ' + seconds(state.boundMs) + ')' : '');
    if (isActive) {
      classes.push('active');
      if (state.final) classes.push(/failed$/.test(state.id) ? 'final-failed' : 'final-ok');
      const inState = Math.max(0, now - here.at);
      if (!state.final && state.boundMs) {
        const share = inState / state.boundMs;
        if (share >= 1) classes.push('over'); else if (share >= 0.8) classes.push('warn');
        info = seconds(inState) + ' of ' + seconds(state.boundMs);
        meter = '<rect class="meter" x="8" y="' + (BOX_HEIGHT - 8) + '" width="' + (node.width - 16) + '" height="4" rx="2"/><rect class="meter-fill" x="8" y="' + (BOX_HEIGHT - 8) + '" width="' + ((node.width - 16) * Math.min(1, share)).toFixed(1) + '" height="4" rx="2"/>';
      } else if (!state.final) info = seconds(inState);
    }
    const opens = state.invokes ? ' data-open="' + text(state.invokes) + '"' : '';
    const label = state.id + (isActive ? ', active, ' : visited.has(node.id) ? ', passed through, ' : ', ') + info;
    return '<g class="' + classes.join(' ') + '" data-state="' + text(state.id) + '"' + (isActive ? ' data-active="true"' : '') + ' data-visited="' + visited.has(node.id) + '" data-ms="' + Math.round(spent[node.id] || 0) + '"' + opens + ' role="img" aria-label="' + text(label) + '" transform="translate(' + node.x.toFixed(1) + ' ' + node.y.toFixed(1) + ')">'
      + '<rect class="box" width="' + node.width + '" height="' + BOX_HEIGHT + '" rx="' + (state.final ? 14 : 6) + '"/>'
      + '<text class="name" x="10" y="17">' + text(state.name) + (state.invokes ? ' ▸' : '') + '</text><text class="info" x="10" y="32">' + text(info) + '</text>' + meter + '</g>';
  }).join('');
  byId('chart').innerHTML = '<svg role="img" aria-label="statechart of ' + text(shown) + '" data-chart="' + text(shown) + '" width="' + Math.ceil(laid.width) + '" height="' + Math.ceil(laid.height) + '" viewBox="0 0 ' + Math.ceil(laid.width) + ' ' + Math.ceil(laid.height) + '"><defs>' + arrowHeads() + '</defs>' + edgeSvg + nodeSvg + '</svg>';
  // A wide machine is scrolled to its active state whenever that changes, not on every redraw (a
  // person may be scrolling it).
  const focus = here && (laid.children || []).find((node) => node.id === here.state);
  if (focus && shown + focus.id !== lastFocus) {
    lastFocus = shown + focus.id;
    const chart = byId('chart');
    chart.scrollLeft = Math.max(0, focus.x + focus.width / 2 - chart.clientWidth / 2);
    chart.scrollTop = Math.max(0, focus.y + BOX_HEIGHT / 2 - chart.clientHeight / 2);
  }
}

/** One bar per stay in a state on a time axis; a bound as a dashed track and a mark; the cursor a red line. */
function drawWaterfall(rows, nowAt, cursorAt) {
  const LABEL = 230, WIDTH = 640, ROW = 18, TOP = 22;
  const last = rows.reduce((most, row) => Math.max(most, row.end), 0);
  const span = Math.max(1, last, nowAt || 0);
  const x = (ms) => LABEL + (Math.min(ms, span) / span) * WIDTH;
  const steps = [100, 200, 500, 1000, 2000, 5000, 10000, 20000, 30000, 60000, 120000, 300000];
  const step = steps.find((s) => span / s <= 10) || 600000;
  let axis = '';
  for (let t = 0; t <= span; t += step) axis += '<line x1="' + x(t).toFixed(1) + '" x2="' + x(t).toFixed(1) + '" y1="14" y2="' + (TOP + rows.length * ROW) + '"/><text x="' + x(t).toFixed(1) + '" y="10" text-anchor="middle">' + (t / 1000) + ' s</text>';
  const bars = rows.map((row, index) => {
    const y = TOP + index * ROW;
    const ms = row.end - row.start;
    const share = row.boundMs ? ms / row.boundMs : 0;
    const classes = ['wf-row', 'd' + Math.min(row.depth, 2)];
    if (row.open) classes.push('open');
    if (share >= 1) classes.push('over'); else if (share >= 0.8) classes.push('warn');
    if (cursorAt !== null && row.start > cursorAt) classes.push('future');
    const track = row.boundMs ? '<rect class="track" x="' + x(row.start).toFixed(1) + '" y="' + (y + 3) + '" width="' + Math.max(1, x(row.start + row.boundMs) - x(row.start)).toFixed(1) + '" height="' + (ROW - 6) + '"/>' + (row.start + row.boundMs <= span ? '<line class="limit" x1="' + x(row.start + row.boundMs).toFixed(1) + '" x2="' + x(row.start + row.boundMs).toFixed(1) + '" y1="' + (y + 1) + '" y2="' + (y + ROW - 1) + '"/>' : '') : '';
    const title = row.state + ': ' + seconds(ms) + (row.boundMs ? ' of its ' + seconds(row.boundMs) + ' bound' : '') + (row.open ? ' (still in it)' : '') + ' — entered on ' + row.summary;
    return '<g class="' + classes.join(' ') + '" data-row="' + index + '" data-state="' + text(row.state) + '" data-depth="' + row.depth + '" data-start="' + row.start + '" data-ms="' + ms + '"' + (row.boundMs ? ' data-bound-ms="' + row.boundMs + '"' : '') + '><title>' + text(title) + '</title>'
      + '<text x="' + (4 + row.depth * 14) + '" y="' + (y + 13) + '">' + text(row.state) + '</text>' + track
      + '<rect class="wf-bar" x="' + x(row.start).toFixed(1) + '" y="' + (y + 4) + '" width="' + Math.max(1.5, x(row.end) - x(row.start)).toFixed(1) + '" height="' + (ROW - 8) + '" rx="2"/>'
      + '<text x="' + (LABEL + WIDTH + 8) + '" y="' + (y + 13) + '">' + text(seconds(ms) + (row.boundMs ? ' / ≤ ' + seconds(row.boundMs) : '')) + '</text></g>';
  }).join('');
  const cursorLine = cursorAt !== null ? '<line class="wf-cursor" data-cursor="' + cursorAt + '" x1="' + x(cursorAt).toFixed(1) + '" x2="' + x(cursorAt).toFixed(1) + '" y1="14" y2="' + (TOP + rows.length * ROW) + '"/>' : '';
  const height = TOP + rows.length * ROW + 6;
  return '<svg role="img" aria-label="waterfall of the run" data-waterfall="true" data-total-ms="' + last + '" viewBox="0 0 ' + (LABEL + WIDTH + 150) + ' ' + height + '" width="' + (LABEL + WIDTH + 150) + '" height="' + height + '"><g class="wf-axis">' + axis + '</g>' + bars + cursorLine + '</svg>';
}

byId('tabs').addEventListener('click', (event) => { const tab = event.target.closest('[data-tab]'); if (tab) { pinned = tab.getAttribute('data-tab') || null; render(); } });
byId('chart').addEventListener('click', (event) => { const node = event.target.closest('[data-open]'); if (node) { pinned = node.getAttribute('data-open'); render(); } });
byId('cursor').addEventListener('input', (event) => { const all = messages.filter((m) => m.kind === 'entry'); const value = Number(event.target.value); cursor = value >= all.length - 1 ? null : value; render(); });
const source = new EventSource('events');
source.onmessage = (event) => receive(JSON.parse(event.data));
source.onerror = () => { if (!messages.some((m) => m.kind === 'end')) byId('note').textContent = 'connection to warmvm lost'; };
setInterval(() => { if (hello && hello.live && !messages.some((m) => m.kind === 'end')) render(); }, 200);
</script>
</body>
</html>
`;
