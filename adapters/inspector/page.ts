/**
 * The inspector page: one self-contained document (no network but its own server's events), so it
 * works offline. It rebuilds everything from the message list: the machines with the active state
 * lit, the time in it against its bound, the event log, the last exchanges, the fallback reason.
 * A recorded run gets a slider to step through it.
 */
export const INSPECTOR_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>warmvm inspector</title>
<style>
  :root { font: 14px/1.35 system-ui, sans-serif; color: #1d2433; background: #f4f6fa; }
  body { margin: 0; }
  header { display: flex; gap: 16px; align-items: center; padding: 10px 18px; background: #1d2433; color: #fff; }
  header h1 { font-size: 16px; margin: 0; font-weight: 600; }
  #status { padding: 3px 10px; border-radius: 12px; font-weight: 600; background: #5b6b8c; }
  #status.healthy, #status.stopped { background: #1f8a4c; } #status.failed { background: #c0392b; } #status.running { background: #2d6cdf; }
  #note { font-size: 13px; opacity: .85; }
  main { display: grid; grid-template-columns: minmax(380px, 1fr) minmax(420px, 1.2fr); gap: 16px; padding: 16px 18px; }
  .machine { border: 1px solid #c9d1e0; border-radius: 8px; padding: 8px; background: #fff; }
  .machine > .title { font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: #5b6b8c; margin-bottom: 6px; }
  .state { border: 1px solid #d6dcea; border-radius: 6px; padding: 5px 8px; margin: 4px 0; background: #fbfcfe; }
  .state .name { font-family: ui-monospace, monospace; }
  .state .bound { float: right; color: #7a869e; font-size: 12px; }
  .state.transient { border-style: dashed; }
  .state.visited { background: #eef3fb; }
  .state.active { border: 2px solid #2d6cdf; background: #e3edff; }
  .state.active.warn { border-color: #e08e0b; background: #fff3dc; }
  .state.active.over { border-color: #c0392b; background: #fde5e2; }
  .state.active.final-ok { border-color: #1f8a4c; background: #e1f5e8; }
  .state.active.final-failed { border-color: #c0392b; background: #fde5e2; }
  .bar { height: 5px; background: #d6dcea; border-radius: 3px; margin-top: 4px; overflow: hidden; }
  .bar > div { height: 100%; background: #2d6cdf; }
  .warn .bar > div { background: #e08e0b; } .over .bar > div { background: #c0392b; }
  .elapsed { font-size: 12px; color: #33415c; }
  .state .machine { margin: 6px 0 2px 10px; }
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
</style>
</head>
<body>
<header><h1 id="title">warmvm inspector</h1><span id="status">connecting</span><span id="note"></span></header>
<main>
  <div><div id="replay"><span>step</span><input id="cursor" type="range" min="0" value="0"><span id="cursorText"></span></div><div id="machines"></div></div>
  <div>
    <section class="panel" id="fallback"><h2>Fallback</h2><div id="fallbackText"></div></section>
    <section class="panel"><h2>Now</h2><div class="kv" id="now"></div></section>
    <section class="panel"><h2>Last exchanges</h2><div class="kv" id="exchanges"></div></section>
    <section class="panel"><h2>Events</h2><table><thead><tr><th class="mono">at</th><th>state entered</th><th>left after</th><th>event</th></tr></thead><tbody id="events"></tbody></table></section>
  </div>
</main>
<script>
'use strict';
const messages = [];
let model = null, hello = null, clockOffset = 0, cursor = null;
const byId = (id) => document.getElementById(id);
const text = (value) => String(value).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const seconds = (ms) => (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';

function receive(message) {
  messages.push(message);
  if (message.kind === 'hello') { hello = message; model = message.model; clockOffset = message.now - Date.now(); }
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
  byId('machines').innerHTML = drawMachine(model.root, active, visited, now, end);
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

function drawMachine(id, active, visited, now, end) {
  const machine = model.machines.find((m) => m.id === id);
  if (!machine) return '';
  const activeHere = active.find((a) => a.state.startsWith(id + '.'));
  const states = machine.states.map((state) => {
    const isActive = activeHere && activeHere.state === state.id;
    const classes = ['state'];
    if (state.transient) classes.push('transient');
    if (visited.has(state.id)) classes.push('visited');
    let extra = '';
    if (isActive) {
      classes.push('active');
      if (state.final) classes.push(/failed$/.test(state.id) ? 'final-failed' : 'final-ok');
      const spent = Math.max(0, now - activeHere.at);
      if (!state.final && state.boundMs) {
        const share = spent / state.boundMs;
        if (share >= 1) classes.push('over'); else if (share >= 0.8) classes.push('warn');
        extra = '<div class="elapsed">' + seconds(spent) + ' of ' + seconds(state.boundMs) + '</div><div class="bar"><div style="width:' + Math.min(100, share * 100).toFixed(1) + '%"></div></div>';
      } else if (!state.final) {
        extra = '<div class="elapsed">' + seconds(spent) + '</div>';
      }
    }
    const child = state.invokes && (isActive || visited.has(state.id)) ? drawMachine(state.invokes, active, visited, now, end) : '';
    const bound = state.boundMs ? '<span class="bound">≤ ' + seconds(state.boundMs) + '</span>' : '';
    return '<div class="' + classes.join(' ') + '" data-state="' + text(state.id) + '"' + (isActive ? ' data-active="true"' : '') + '><span class="name">' + text(state.name) + '</span>' + bound + extra + child + '</div>';
  }).join('');
  return '<div class="machine" data-machine="' + text(id) + '"><div class="title">' + text(id) + '</div>' + states + '</div>';
}

byId('cursor').addEventListener('input', (event) => { const all = messages.filter((m) => m.kind === 'entry'); const value = Number(event.target.value); cursor = value >= all.length - 1 ? null : value; render(); });
const source = new EventSource('events');
source.onmessage = (event) => receive(JSON.parse(event.data));
source.onerror = () => { if (!messages.some((m) => m.kind === 'end')) byId('note').textContent = 'connection to warmvm lost'; };
setInterval(() => { if (hello && hello.live && !messages.some((m) => m.kind === 'end')) render(); }, 200);
</script>
</body>
</html>
`;
