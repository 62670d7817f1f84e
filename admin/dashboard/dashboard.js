// The connector's live dashboard: a snapshot from /api/v1/stream, then every
// event applied in place. Data only ever reaches the page through
// textContent, never parsed as HTML, and class names from fixed lists.
'use strict';
(function () {
  // The token comes in the page's own URL; keep it in memory only and take
  // it out of the address bar (and so out of history and bookmarks).
  const params = new URLSearchParams(location.search);
  const token = params.get('token') || '';
  if (params.has('token')) {
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + (rest ? '?' + rest : '') + location.hash);
  }

  const agents = new Map();  // agentId -> Agent
  const devices = new Map(); // deviceId -> Device
  const phones = new Map();  // dn -> Phone
  const links = new Map();   // server -> Link
  let live = false, retries = 0, reconnectAt = 0, lastUpdate = null, socket = null, renderQueued = false;

  const STATES = { loggedOff: 'logged off', ready: 'ready', notReady: 'not ready', workingAfterCall: 'after-call work', unknown: 'unknown' };
  const LINKS = { up: 'up', down: 'down', degraded: 'degraded' };

  function cell(text, cls) {
    const td = document.createElement('td');
    td.textContent = text == null ? '' : String(text);
    if (cls) td.className = cls;
    return td;
  }
  function pill(text, cls) {
    const td = document.createElement('td');
    const span = document.createElement('span');
    span.className = 'pill ' + cls;
    span.textContent = text;
    td.appendChild(span);
    return td;
  }
  function row(key, cells) {
    const tr = document.createElement('tr');
    tr.dataset.key = key;
    tr.append(...cells);
    return tr;
  }
  function byKey(map) {
    return [...map.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true })).map((k) => map.get(k));
  }

  function ago(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + 's';
    const m = Math.floor(s / 60);
    if (m < 60) return m + 'm';
    const h = Math.floor(m / 60);
    return h < 48 ? h + 'h' + String(m % 60).padStart(2, '0') : Math.floor(h / 24) + 'd';
  }
  function when(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (isNaN(d)) return '';
    const today = d.toDateString() === new Date().toDateString();
    return (today ? d.toLocaleTimeString() : d.toLocaleString()) + ' (' + ago(Date.now() - d) + ' ago)';
  }

  function renderAgents() {
    const rows = byKey(agents).map((a) => {
      const state = Object.hasOwn(STATES, a.state) ? a.state : 'unknown';
      return row(a.agentId, [
        cell(a.agentId),
        pill(STATES[state] + (state === 'unknown' && a.state && a.state !== 'unknown' ? ' (' + a.state + ')' : ''), 'st-' + state),
        cell(a.reason || ''),
        a.desk ? cell(a.desk) : cell('—', 'muted'),
        cell(when(a.since), 'muted'),
      ]);
    });
    document.querySelector('#agents tbody').replaceChildren(...rows);
    document.getElementById('agents-count').textContent = '(' + [...agents.values()].filter((a) => a.state && a.state !== 'loggedOff').length + ' of ' + agents.size + ' logged on)';
  }

  function phoneCell(dn) {
    const p = phones.get(dn);
    if (!p) return cell('no phone', 'muted');
    if (p.expires && new Date(p.expires) < new Date()) return pill('expired', 'ph-expired');
    return p.inService ? pill('in service', 'ph-in') : pill('out of service', 'ph-out');
  }
  function forwarding(d) {
    const on = (d.forwarding || []).filter((f) => f.active);
    return on.length ? on.map((f) => f.type + (f.number ? ' → ' + f.number : '')).join(', ') : '';
  }
  function renderDesks() {
    const list = byKey(devices).sort((a, b) => Number(b.hotDesk) - Number(a.hotDesk));
    const rows = list.map((d) => {
      const guest = !d.hotDesk ? cell('own line', 'muted') : d.guestAgentId ? cell(d.guestAgentId) : cell('free', 'free');
      const fwd = forwarding(d);
      return row(d.deviceId, [
        cell(d.deviceId),
        guest,
        d.doNotDisturb ? cell('on', 'on') : cell('off', 'muted'),
        fwd ? cell(fwd, 'fwd') : cell('off', 'muted'),
        phoneCell(d.deviceId),
      ]);
    });
    document.querySelector('#desks tbody').replaceChildren(...rows);
    const hot = list.filter((d) => d.hotDesk);
    document.getElementById('desks-count').textContent = '(' + hot.filter((d) => !d.guestAgentId).length + ' of ' + hot.length + ' hot desks free)';
  }

  function renderLinks() {
    const rows = byKey(links).map((l) => row(l.server, [
      cell(l.server),
      pill(l.state || 'unknown', Object.hasOwn(LINKS, l.state) ? 'ln-' + l.state : 'ln-other'),
      cell(when(l.since), 'muted'),
      cell(l.error || ''),
    ]));
    document.querySelector('#links tbody').replaceChildren(...rows);
  }

  function renderStatus() {
    const conn = document.getElementById('conn');
    if (!token) {
      conn.className = 'conn conn-notoken';
      conn.textContent = 'no token: open this page as /?token=…';
    } else if (live) {
      conn.className = 'conn conn-live';
      conn.textContent = 'live';
    } else if (reconnectAt) {
      conn.className = 'conn conn-reconnecting';
      conn.textContent = 'reconnecting in ' + Math.max(0, Math.ceil((reconnectAt - Date.now()) / 1000)) + ' s';
    } else {
      conn.className = 'conn conn-connecting';
      conn.textContent = retries ? 'reconnecting' : 'connecting';
    }
    document.getElementById('main').className = live ? '' : 'stale';
    document.getElementById('updated').textContent = lastUpdate ? 'last update ' + lastUpdate.toLocaleTimeString() + ' (' + ago(Date.now() - lastUpdate) + ' ago)' : 'no update yet';
  }

  function render() {
    renderQueued = false;
    renderAgents();
    renderDesks();
    renderLinks();
    renderStatus();
  }
  function queueRender() {
    if (!renderQueued) {
      renderQueued = true;
      setTimeout(render, 0);
    }
  }

  function fill(map, list, key) {
    map.clear();
    for (const item of list || []) if (item && item[key] != null) map.set(item[key], item);
  }
  function apply(msg) {
    switch (msg.kind) {
      case 'snapshot':
        fill(agents, msg.agents, 'agentId');
        fill(devices, msg.devices, 'deviceId');
        fill(phones, msg.phones, 'dn');
        fill(links, msg.links, 'server');
        break;
      case 'agent': if (msg.agent) agents.set(msg.agent.agentId, msg.agent); break;
      case 'device': if (msg.device) devices.set(msg.device.deviceId, msg.device); break;
      case 'phone': if (msg.phone) phones.set(msg.phone.dn, msg.phone); break;
      case 'link': if (msg.link) links.set(msg.link.server, msg.link); break;
      default: return; // a kind this page does not know
    }
    lastUpdate = new Date();
    queueRender();
  }

  function connect() {
    reconnectAt = 0;
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    const ws = new WebSocket(scheme + location.host + '/api/v1/stream?token=' + encodeURIComponent(token));
    socket = ws;
    ws.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      if (msg && msg.kind === 'snapshot') {
        live = true;
        retries = 0;
      }
      if (msg) apply(msg);
    };
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      live = false;
      // Exponential backoff with jitter, 1 s up to 30 s; reset by the next snapshot.
      const delay = Math.round(Math.min(30000, 1000 * 2 ** Math.min(retries, 5)) * (0.8 + Math.random() * 0.4));
      retries++;
      reconnectAt = Date.now() + delay;
      setTimeout(connect, delay);
      renderStatus();
    };
    renderStatus();
  }

  render();
  setInterval(renderStatus, 1000);
  setInterval(queueRender, 15000); // the "ago" columns
  if (token) connect();
})();
