// The connector's live dashboard: a snapshot from /api/v1/stream, then every
// event applied in place. Data only ever reaches the page through
// textContent, never parsed as HTML, and class names from fixed lists.
// Built for a floor of thousands: counts by state on top (a segment filters
// by its state), a search over agents and desks, sortable columns, tables
// that hold only the rows in view (plus a margin), and one render per
// animation frame however many events come.
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
  let filterText = '', filterState = '';
  const sorts = { agents: { col: 0, dir: 1 }, desks: { col: -1, dir: 1 } }; // desks -1: hot desks first
  const lists = { agents: null, desks: null }; // filtered and sorted; null: to do again
  let rowHeight = 0; // px, measured from the first row drawn

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
  const collator = new Intl.Collator(undefined, { numeric: true });
  function byKey(map) {
    return [...map.keys()].sort(collator.compare).map((k) => map.get(k));
  }
  function agentState(a) { return Object.hasOwn(STATES, a.state) ? a.state : 'unknown'; }
  function stateLabel(a) {
    const state = agentState(a);
    return STATES[state] + (state === 'unknown' && a.state && a.state !== 'unknown' ? ' (' + a.state + ')' : '');
  }
  function matches(texts) {
    if (!filterText) return true;
    const q = filterText.toLowerCase();
    return texts.some((t) => t && String(t).toLowerCase().includes(q));
  }
  // sortBy orders list by the texts key(item)[col], in dir; ties by the first.
  function sortBy(list, key, col, dir) {
    const keyed = list.map((item) => ({ item, k: key(item) }));
    keyed.sort((x, y) => dir * (collator.compare(x.k[col] || '', y.k[col] || '') || collator.compare(x.k[0], y.k[0])));
    return keyed.map((x) => x.item);
  }
  function agentKeys(a) { return [a.agentId, stateLabel(a), a.reason || '', a.desk || '', a.since || '']; }
  function deskKeys(d) {
    const p = phones.get(d.deviceId);
    return [d.deviceId, d.hotDesk ? d.guestAgentId || 'free' : 'own line', d.doNotDisturb ? 'on' : 'off', forwarding(d), p ? (p.inService ? 'in service' : 'out of service') : 'no phone'];
  }

  // virtual draws into table id the rows of list in view (and a margin),
  // with spacers standing in for the rest so that the scroll bar is true.
  function virtual(id, list, makeRow) {
    const scroll = document.getElementById(id + '-scroll');
    const h = rowHeight || 30;
    const first = Math.max(0, Math.floor(scroll.scrollTop / h) - 15);
    const last = Math.min(list.length, first + Math.ceil((scroll.clientHeight || 800) / h) + 30);
    const rows = [];
    if (first > 0) rows.push(spacer(first * h));
    for (let i = first; i < last; i++) rows.push(makeRow(list[i]));
    if (last < list.length) rows.push(spacer((list.length - last) * h));
    const tbody = document.querySelector('#' + id + ' tbody');
    tbody.replaceChildren(...rows);
    if (!rowHeight) {
      const r = tbody.querySelector('tr[data-key]');
      if (r) rowHeight = r.getBoundingClientRect().height || 0;
    }
  }
  function spacer(px) {
    const tr = document.createElement('tr');
    tr.className = 'spacer';
    const td = document.createElement('td');
    td.colSpan = 5;
    td.style.height = px + 'px';
    tr.appendChild(td);
    return tr;
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

  const ORDER = ['ready', 'notReady', 'workingAfterCall', 'loggedOff', 'unknown'];
  function renderCounts() {
    const n = Object.fromEntries(ORDER.map((s) => [s, 0]));
    for (const a of agents.values()) n[agentState(a)]++;
    const segs = ORDER.filter((s) => n[s] > 0).map((s) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'seg st-' + s + (filterState === s ? ' chosen' : filterState ? ' faded' : '');
      b.dataset.state = s;
      b.style.flexGrow = String(n[s]);
      b.textContent = STATES[s] + ' ' + n[s];
      b.title = STATES[s] + ': ' + n[s] + ' of ' + agents.size + (filterState === s ? ' (click: show all)' : ' (click: show only these)');
      return b;
    });
    document.getElementById('counts').replaceChildren(...segs);
  }

  function agentList() {
    if (!lists.agents) {
      const shown = [...agents.values()].filter((a) => (!filterState || agentState(a) === filterState) && matches(agentKeys(a)));
      lists.agents = sortBy(shown, agentKeys, sorts.agents.col, sorts.agents.dir);
    }
    return lists.agents;
  }
  function renderAgents() {
    const list = agentList();
    virtual('agents', list, (a) => row(a.agentId, [
      cell(a.agentId),
      pill(stateLabel(a), 'st-' + agentState(a)),
      cell(a.reason || ''),
      a.desk ? cell(a.desk) : cell('—', 'muted'),
      cell(when(a.since), 'muted'),
    ]));
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
  function deskList() {
    if (!lists.desks) {
      const shown = [...devices.values()].filter((d) => matches(deskKeys(d)));
      const s = sorts.desks;
      lists.desks = s.col < 0 ? shown.sort((a, b) => Number(b.hotDesk) - Number(a.hotDesk) || collator.compare(a.deviceId, b.deviceId))
        : sortBy(shown, deskKeys, s.col, s.dir);
    }
    return lists.desks;
  }
  function renderDesks() {
    const list = deskList();
    virtual('desks', list, (d) => {
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
    const hot = [...devices.values()].filter((d) => d.hotDesk);
    document.getElementById('desks-count').textContent = '(' + hot.filter((d) => !d.guestAgentId).length + ' of ' + hot.length + ' hot desks free)';
    const filtered = filterText || filterState;
    document.getElementById('filter').textContent = filtered
      ? 'showing ' + agentList().length + ' of ' + agents.size + ' agents, ' + list.length + ' of ' + devices.size + ' desks' : '';
  }
  function renderSortMarks() {
    for (const id of ['agents', 'desks']) {
      const s = sorts[id];
      for (const th of document.querySelectorAll('#' + id + ' th')) {
        const col = Number(th.dataset.col);
        if (col === s.col) th.setAttribute('aria-sort', s.dir > 0 ? 'ascending' : 'descending');
        else th.removeAttribute('aria-sort');
      }
    }
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

  function renderPhones() {
    const list = byKey(phones);
    const rows = list.map((p) => row(p.dn, [
      cell(p.dn),
      phoneCell(p.dn),
      cell(p.address ? p.address + (p.port ? ':' + p.port : '') : ''),
      cell(p.transport || ''),
      cell(when(p.lastSeen), 'muted'),
      cell((p.events || []).join(', ')),
    ]));
    document.querySelector('#phones tbody').replaceChildren(...rows);
    const out = list.filter((p) => !p.inService).length;
    document.getElementById('phones-count').textContent = list.length ? '(' + list.length + (out ? ', ' + out + ' out of service' : '') + ')' : '';
  }

  // api reads a path of this host's API with the token (the stream's
  // companions: CTI sessions, the journal); an error names the answer.
  function api(path) {
    return fetch(path, { headers: { Authorization: 'Bearer ' + token }, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' })
      .then((r) => r.ok ? r.json() : r.json().catch(() => ({})).then((b) => { throw new Error(b.error || 'HTTP ' + r.status); }));
  }

  // CTI sessions are not on the stream: read from the API while their tab
  // is shown, every 5 s.
  let sessionsTimer = 0;
  function loadSessions() {
    clearTimeout(sessionsTimer);
    if (tab !== 'sessions') return;
    api('/api/v1/sessions')
      .then((list) => {
        const rows = (Array.isArray(list) ? list : []).map((x) => row(x.id, [
          cell(x.id), cell(x.remote), cell(x.user || ''), cell(x.transport), cell(when(x.since), 'muted'), cell(x.monitors),
        ]));
        document.querySelector('#sessions tbody').replaceChildren(...rows);
        document.getElementById('sessions-note').textContent = '(' + rows.length + ', read ' + new Date().toLocaleTimeString() + ')';
      })
      .catch((e) => { document.getElementById('sessions-note').textContent = '(unavailable: ' + e.message + ')'; })
      .finally(() => { if (tab === 'sessions') sessionsTimer = setTimeout(loadSessions, 5000); });
  }
  // ---- charts: the last hour from /api/v1/history (10 s buckets) ----
  // Three inline SVGs, one path per series, redrawn every 10 s and soon
  // after an agent changes; the latest value in the caption and in the
  // chart's aria-label (and data-latest, a number).
  const CHART_W = 360, CHART_H = 60;
  let chartsTimer = 0, chartsSoonTimer = 0, chartsSeq = 0;
  function loadCharts() {
    clearTimeout(chartsTimer);
    const seq = ++chartsSeq;
    const note = document.getElementById('charts-note');
    api('/api/v1/history')
      .then((h) => { if (seq === chartsSeq) { drawCharts(h); note.hidden = true; } })
      .catch((e) => { if (seq === chartsSeq) { note.textContent = 'charts unavailable: ' + e.message; note.hidden = false; } })
      .finally(() => { if (seq === chartsSeq) chartsTimer = setTimeout(loadCharts, 10000); });
  }
  function chartsSoon() {
    if (!chartsSoonTimer) chartsSoonTimer = setTimeout(() => { chartsSoonTimer = 0; loadCharts(); }, 1000);
  }
  function num(x) {
    if (x == null || !isFinite(x)) return '–';
    return x >= 100 ? String(Math.round(x)) : String(Math.round(x * 100) / 100);
  }
  function ms(x) { return x >= 1000 ? num(x / 1000) + ' s' : num(x) + ' ms'; }
  // niceTop is the scale's top: 1, 2 or 5 times a power of ten, at least v.
  function niceTop(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    return [1, 2, 5, 10].map((m) => m * p).find((t) => t >= v);
  }
  // pathOf is the SVG path of values across the chart, top at top: a line,
  // or (bars) a vertical bar per value, none where a value is null.
  function pathOf(values, top, bars) {
    const n = values.length, dx = n > 1 ? CHART_W / (n - 1) : 0;
    const r = (x) => Math.round(x * 10) / 10;
    let d = '';
    values.forEach((v, i) => {
      if (v == null || !isFinite(v)) return;
      const x = r(i * dx), y = r(CHART_H - 2 - Math.min(1, v / top) * (CHART_H - 4));
      d += bars ? 'M' + x + ' ' + CHART_H + 'V' + y : (d ? 'L' : 'M') + x + ' ' + y;
    });
    return d;
  }
  function sumOf(list) { return list.reduce((a, b) => a + (b || 0), 0); }
  // chart draws one figure: its paths (class -> values), scale, caption
  // and accessible label.
  function chart(id, series, top, scale, latest, caption, label, bars) {
    const fig = document.getElementById(id);
    for (const [cls, values] of Object.entries(series)) fig.querySelector('path.' + cls).setAttribute('d', pathOf(values, top, bars));
    fig.querySelector('.scale').textContent = scale;
    fig.querySelector('.now').textContent = caption;
    fig.dataset.latest = String(latest);
    fig.querySelector('svg').setAttribute('aria-label', label);
  }
  function drawCharts(h) {
    const per = Number(h.intervalSeconds) || 10;
    const logins = Array.isArray(h.logins) ? h.logins : [];
    const changes = Array.isArray(h.stateChanges) ? h.stateChanges : [];
    const delay = h.delay || {};
    const count = delay.count || [], ahead = delay.ahead || [], mean = delay.meanMs || [], most = delay.maxMs || [];
    const minute = Math.max(1, Math.round(60 / per)); // buckets in a minute
    const recent = (list) => list.slice(-minute);

    // Logins per minute: whole minutes counted back from now, the last
    // one ending now.
    const perMinute = [];
    for (let end = logins.length; end > 0; end -= minute) perMinute.unshift(sumOf(logins.slice(Math.max(0, end - minute), end)));
    const loginsNow = perMinute.length ? perMinute[perMinute.length - 1] : 0;
    const loginsTop = niceTop(Math.max(...perMinute, 0));
    chart('chart-logins', { line: perMinute }, loginsTop, 'top ' + loginsTop + '/min', loginsNow,
      loginsNow + ' last minute',
      'Logins per minute over the last hour: ' + loginsNow + ' in the last minute, at most ' + Math.max(...perMinute, 0) + ' in a minute');

    const rate = changes.map((n) => (n || 0) / per);
    const changesNow = sumOf(recent(changes)) / (minute * per);
    const changesTop = niceTop(Math.max(...rate, 0));
    chart('chart-changes', { line: rate }, changesTop, 'top ' + num(changesTop) + '/s', changesNow,
      num(changesNow) + '/s last minute',
      'Agent state changes per second over the last hour: ' + num(changesNow) + ' per second over the last minute, at most ' + num(Math.max(...rate, 0)) + ' in 10 seconds');

    // Delay: the mean and the max of each bucket, as bars (none where no
    // event came, so a lone event shows); the caption is the
    // last minute's (weighted mean, max) and tells of events stamped
    // ahead of this host's clock (clock skew).
    const n = sumOf(recent(count)), skewed = sumOf(recent(ahead)) ;
    const lastMean = n ? recent(mean).reduce((a, m, i) => a + (m || 0) * (recent(count)[i] || 0), 0) / n : null;
    const lastMax = n ? Math.max(...recent(most).map((m) => m || 0)) : null;
    const delayTop = niceTop(Math.max(...most.map((m) => m || 0), 0));
    const skewNote = skewed ? ', ' + skewed + ' stamped ahead of this clock (skew)' : '';
    chart('chart-delay', { line: mean, max: most }, delayTop, 'top ' + ms(delayTop), lastMean == null ? '' : lastMean,
      n ? ms(lastMean) + ', max ' + ms(lastMax) + skewNote : 'no event in the last minute',
      'XSI agent-state event delay over the last hour: ' + (n ? 'mean ' + ms(lastMean) + ', max ' + ms(lastMax) + ' over the last minute (' + n + (n === 1 ? ' event' : ' events') + skewNote + ')' : 'no event in the last minute'), true);
  }

  let tab = 'floor';
  function showTab(name) {
    tab = name;
    for (const b of document.querySelectorAll('.tabs button')) b.setAttribute('aria-selected', String(b.dataset.tab === name));
    for (const el of document.querySelectorAll('.tab')) el.hidden = el.id !== 'tab-' + name;
    loadSessions();
    queueRender();
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
    renderCounts();
    renderAgents();
    renderDesks();
    renderSortMarks();
    renderPhones();
    renderLinks();
    renderStatus();
  }
  // queueRender draws once in the next animation frame, whatever came
  // meanwhile (a page in the background draws when it is shown again).
  function queueRender() {
    if (!renderQueued) {
      renderQueued = true;
      requestAnimationFrame(render);
    }
  }
  function changed() {
    lists.agents = lists.desks = null;
    queueRender();
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
      case 'agent': if (msg.agent) { agents.set(msg.agent.agentId, msg.agent); chartsSoon(); } break;
      case 'device': if (msg.device) devices.set(msg.device.deviceId, msg.device); break;
      case 'phone': if (msg.phone) phones.set(msg.phone.dn, msg.phone); break;
      case 'link': if (msg.link) links.set(msg.link.server, msg.link); break;
      default: return; // a kind this page does not know
    }
    lastUpdate = new Date();
    historyChanged(msg);
    changed();
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

  // ---- history: an agent's desks or a desk's guests, from the journal ----
  const DAY = 24 * 3600 * 1000;
  let opened = null; // the history shown: { kind: 'agent' or 'desk', key }
  let historySeq = 0, historyTimer = 0;
  const ENDS = { logout: 'logged out', forced: 'logged out by a supervisor', stale: 'its CTI connection lost', 'association-limit': 'association limit',
    recovery: 'repaired by the connector', portal: 'ended outside the connector', unknown: 'found ended' };

  function openHistory(kind, key) {
    opened = { kind, key };
    document.getElementById('history').hidden = false;
    document.getElementById('history-title').textContent = (kind === 'agent' ? 'Where ' + key + ' sat' : 'Who sat at ' + key);
    document.getElementById('history-who').textContent = kind === 'agent' ? 'Desk' : 'Agent';
    loadHistory();
  }
  function loadHistory() {
    if (!opened) return;
    const h = opened, seq = ++historySeq;
    const to = new Date(), from = new Date(to - DAY);
    const note = document.getElementById('history-note');
    api('/api/v1/journal/' + h.kind + '/' + encodeURIComponent(h.key) + '?from=' + encodeURIComponent(from.toISOString()) + '&to=' + encodeURIComponent(to.toISOString()))
      .then((list) => { if (seq === historySeq) drawHistory(Array.isArray(list) ? list : [], from, to); })
      .catch((e) => {
        if (seq !== historySeq) return;
        note.textContent = 'history unavailable: ' + e.message;
        document.getElementById('timeline').replaceChildren();
        document.querySelector('#history-list tbody').replaceChildren();
      });
  }
  function drawHistory(list, from, to) {
    const span = to - from, bars = [], rows = [];
    const colours = new Map();
    list.forEach((a) => {
      const who = opened.kind === 'agent' ? a.deviceId : a.agentId;
      if (!colours.has(who)) colours.set(who, colours.size % 4);
      const start = new Date(a.start), end = a.end ? new Date(a.end) : to;
      const left = Math.max(0, (start - from) / span), right = Math.min(1, (end - from) / span);
      const bar = document.createElement('div');
      bar.className = 'tl tl-' + colours.get(who) + (a.end ? '' : ' open');
      bar.style.left = (left * 100) + '%';
      bar.style.width = (Math.max(0, right - left) * 100) + '%';
      bar.textContent = who;
      bar.title = who + ': ' + start.toLocaleString() + ' – ' + (a.end ? end.toLocaleString() : 'now');
      bars.push(bar);
      rows.push(row(a.id || who + a.start, [
        cell(who),
        cell(when(a.start)),
        a.end ? cell(when(a.end)) : cell('still there', 'free'),
        cell(a.end ? (ENDS[a.endedBy] || a.endedBy || '') + (a.detail ? ' (' + a.detail + ')' : '') : ''),
      ]));
    });
    document.getElementById('timeline').replaceChildren(...bars);
    document.querySelector('#history-list tbody').replaceChildren(...rows);
    document.getElementById('history-note').textContent = list.length ? '' : (opened.kind === 'agent' ? 'at no desk' : 'nobody sat here') + ' in the last 24 hours';
  }
  // historyChanged reloads an open history its agent's or desk's change may
  // have ended or begun (once, a moment after a burst).
  function historyChanged(msg) {
    if (!opened) return;
    const key = opened.kind === 'agent' ? msg.agent && msg.agent.agentId : msg.device && msg.device.deviceId;
    if (key !== opened.key) return;
    clearTimeout(historyTimer);
    historyTimer = setTimeout(loadHistory, 300);
  }
  document.getElementById('history-close').addEventListener('click', () => {
    opened = null;
    historySeq++;
    document.getElementById('history').hidden = true;
  });
  for (const kind of ['agent', 'desk']) {
    document.querySelector('#' + kind + 's tbody').addEventListener('click', (e) => {
      const tr = e.target.closest('tr[data-key]');
      if (tr) openHistory(kind, tr.dataset.key);
    });
  }

  document.querySelector('.tabs').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-tab]');
    if (b) showTab(b.dataset.tab);
  });

  document.getElementById('search').addEventListener('input', (e) => {
    filterText = e.target.value.trim();
    changed();
  });
  document.getElementById('counts').addEventListener('click', (e) => {
    const seg = e.target.closest('.seg');
    if (!seg) return;
    filterState = filterState === seg.dataset.state ? '' : seg.dataset.state;
    changed();
  });
  for (const id of ['agents', 'desks']) {
    document.querySelector('#' + id + ' thead').addEventListener('click', (e) => {
      const th = e.target.closest('th');
      if (!th) return;
      const col = Number(th.dataset.col), s = sorts[id];
      if (s.col === col) s.dir = -s.dir;
      else { s.col = col; s.dir = 1; }
      changed();
    });
    document.getElementById(id + '-scroll').addEventListener('scroll', queueRender, { passive: true });
  }

  render();
  setInterval(renderStatus, 1000);
  setInterval(queueRender, 15000); // the "ago" columns
  if (token) {
    connect();
    loadCharts();
  }
})();
