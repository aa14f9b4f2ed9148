/* GridTokenX dashboard: one Alpine.js component per page, one API client, one live connection.
   Amounts arrive from the API as exact strings; this file formats them and never does money
   arithmetic with floats. */
"use strict";

const TOKEN_KEY = "gridtokenx.session";

const api = {
  token: null,
  async call(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (api.token) headers.Authorization = `Bearer ${api.token}`;
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = { raw: text }; }
    if (!response.ok) {
      const error = new Error((data && data.error && data.error.message) || `${response.status} ${response.statusText}`);
      error.status = response.status;
      error.code = data && data.error ? data.error.code : "HTTP_" + response.status;
      throw error;
    }
    return data;
  },
  get: (path) => api.call("GET", path),
  post: (path, body) => api.call("POST", path, body ?? {}),
  del: (path) => api.call("DELETE", path),
};

const fmt = {
  kwhFromWh(wh) {
    if (wh === null || wh === undefined) return "–";
    const n = BigInt(wh);
    const sign = n < 0n ? "-" : "";
    const a = n < 0n ? -n : n;
    const frac = (a % 1000n).toString().padStart(3, "0").replace(/0+$/, "");
    return `${sign}${(a / 1000n).toLocaleString()}${frac ? "." + frac : ""}`;
  },
  amount(text, digits = 4) {
    if (text === null || text === undefined || text === "") return "–";
    const [whole, frac = ""] = String(text).split(".");
    const w = BigInt(whole.replace("-", "") || "0").toLocaleString();
    const f = frac.slice(0, digits).replace(/0+$/, "");
    return `${whole.startsWith("-") ? "-" : ""}${w}${f ? "." + f : ""}`;
  },
  time(iso) { return iso ? new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "–"; },
  datetime(iso) { return iso ? new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "short" }) : "–"; },
  short(text) { return text ? (text.length > 14 ? `${text.slice(0, 6)}…${text.slice(-6)}` : text) : "–"; },
};

/* The live connection: one WebSocket for the page, re-opened with `since` after a drop. */
const live = {
  socket: null, lastId: null, handlers: new Set(), connected: false, channels: [],
  open(token, channels) {
    live.close();
    live.channels = channels;
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const since = live.lastId ? `&since=${encodeURIComponent(live.lastId)}` : "";
    const query = `token=${encodeURIComponent(token)}&channels=${encodeURIComponent(channels.join(","))}${since}`;
    const socket = new WebSocket(`${proto}://${location.host}/ws?${query}`);
    live.socket = socket;
    socket.onopen = () => {
      live.connected = true;
      live.emit({ type: "_status" });
    };
    socket.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch { return; }
      if (event.type === "ping") { socket.send(JSON.stringify({ type: "pong" })); return; }
      if (["welcome", "subscribed", "pong", "error"].includes(event.type)) return;
      if (event.type === "too_old") { live.lastId = null; live.emit({ type: "_refetch" }); return; }
      if (event.id !== undefined && event.id !== null) live.lastId = event.id;
      live.emit(event);
    };
    socket.onclose = () => {
      live.connected = false;
      live.emit({ type: "_status" });
      if (live.socket === socket) setTimeout(() => api.token && live.open(api.token, live.channels), 2000);
    };
  },
  close() { const s = live.socket; live.socket = null; if (s) s.close(); live.connected = false; },
  emit(event) { for (const handler of live.handlers) { try { handler(event); } catch (e) { console.warn(e); } } },
  on(handler) { live.handlers.add(handler); return () => live.handlers.delete(handler); },
};

function eventData(event) { return event.data || event.payload || event; }

/* Charts live outside Alpine's reactive state: a Chart wrapped in a reactive proxy misbehaves. */
const charts = new WeakMap();
function chartOf(canvas) { return charts.get(canvas); }
function dropChart(canvas) { const chart = charts.get(canvas); if (chart) { chart.destroy(); charts.delete(canvas); } }
function keepChart(canvas, config) { const chart = new Chart(canvas, config); charts.set(canvas, chart); return chart; }

function lineChart(canvas, label, color) {
  return keepChart(canvas, {
    type: "line",
    data: { labels: [], datasets: [{ label, data: [], borderColor: color, backgroundColor: color + "33", fill: true, tension: .25, pointRadius: 2 }] },
    options: { responsive: true, maintainAspectRatio: false, animation: false, scales: { y: { beginAtZero: true, title: { display: true, text: "Wh" } } }, plugins: { legend: { display: false } } },
  });
}

document.addEventListener("alpine:init", () => {
  Alpine.store("session", {
    user: null, token: null,
    load() {
      try {
        const saved = JSON.parse(localStorage.getItem(TOKEN_KEY) || "null");
        if (saved) { this.user = saved.user; this.token = saved.token; api.token = saved.token; }
      } catch { localStorage.removeItem(TOKEN_KEY); }
    },
    save(token, user) {
      this.token = token; this.user = user; api.token = token;
      localStorage.setItem(TOKEN_KEY, JSON.stringify({ token, user }));
    },
    clear() { this.token = null; this.user = null; api.token = null; localStorage.removeItem(TOKEN_KEY); live.close(); },
    get isAdmin() { return this.user && this.user.role === "admin"; },
  });

  Alpine.data("app", () => ({
    page: "overview", param: null, liveOn: false,
    init() {
      Alpine.store("session").load();
      window.addEventListener("hashchange", () => this.route());
      live.on((event) => { if (event.type === "_status") this.liveOn = live.connected; });
      this.route();
    },
    route() {
      const [page, param] = (location.hash.replace(/^#\/?/, "") || "overview").split("/");
      const session = Alpine.store("session");
      const open = page === "verify" || page === "login";
      this.page = !session.token && !open ? "login" : page;
      this.param = param ? decodeURIComponent(param) : null;
      if (session.token && !live.socket) live.open(session.token, this.channels());
    },
    channels() {
      const session = Alpine.store("session");
      return session.token ? ["market", "orderbook", "epochs", "user"] : [];
    },
    logout() { Alpine.store("session").clear(); location.hash = "#/login"; },
  }));

  Alpine.data("auth", () => ({
    mode: "login", email: "", password: "", role: "prosumer", error: "", notice: "", busy: false,
    async submit() {
      this.error = ""; this.notice = ""; this.busy = true;
      try {
        if (this.mode === "register") {
          await api.post("/api/auth/register", { email: this.email, password: this.password, role: this.role });
          this.notice = "Account created. Check your email for the verification link, then sign in.";
          this.mode = "login";
          return;
        }
        const session = await api.post("/api/auth/login", { email: this.email, password: this.password });
        Alpine.store("session").save(session.access_token, session.user);
        live.open(session.access_token, ["market", "orderbook", "epochs", "user"]);
        location.hash = "#/overview";
      } catch (error) {
        this.error = error.code === "EMAIL_NOT_VERIFIED"
          ? "Your email is not verified yet: open the link we sent you, or ask for a new one."
          : error.message;
        this.unverified = error.code === "EMAIL_NOT_VERIFIED";
      } finally { this.busy = false; }
    },
    unverified: false,
    async resend() {
      await api.post("/api/auth/resend-verification", { email: this.email }).catch(() => {});
      this.notice = "If the account exists and is unverified, a new link is on its way.";
    },
  }));

  Alpine.data("overview", () => ({
    wallet: null, totals: null, meters: [], feed: [], error: "", todayWh: null, redraw: null,
    async init() {
      lineChart(this.$refs.chart, "energy", "#0e9f6e");
      this.off = live.on((event) => this.onEvent(event));
      await this.refresh();
    },
    destroy() { this.off && this.off(); dropChart(this.$refs.chart || this.$refs.depth); },
    async refresh() {
      this.error = "";
      try {
        [this.wallet, this.totals, this.meters] = await Promise.all([
          api.get("/api/wallets/me"), api.get("/api/meters/stats"), api.get("/api/meters/registered"),
        ]);
        await this.loadToday();
      } catch (error) { this.error = error.message; }
    },
    async loadToday() {
      const start = new Date(Date.now() - 86400e3);
      let total = 0n;
      const buckets = new Map();
      for (const meter of this.meters) {
        const rows = await api.get(`/api/meters/${meter.id}/stats/hourly?from=${start.toISOString()}`).catch(() => []);
        for (const row of rows) {
          const energy = BigInt(row.generation_wh || 0) + BigInt(row.export_wh || 0);
          total += energy;
          buckets.set(row.bucket_start, (buckets.get(row.bucket_start) || 0n) + energy);
        }
      }
      this.todayWh = total.toString();
      const keys = [...buckets.keys()].sort();
      const chart = chartOf(this.$refs.chart);
      if (!chart) return;
      chart.data.labels = keys.map((k) => fmt.datetime(k));
      chart.data.datasets[0].data = keys.map((k) => Number(buckets.get(k)));
      chart.update();
    },
    balance(token) {
      const row = this.wallet && this.wallet.balances.find((b) => b.token === token);
      return row ? row.amount_decimal : "0";
    },
    onEvent(event) {
      if (!event.type || event.type.startsWith("_")) return;
      const data = eventData(event);
      this.feed.unshift({ id: event.id ?? Math.random(), type: event.type, at: event.at || event.time || new Date().toISOString(), text: describe(event.type, data) });
      this.feed = this.feed.slice(0, 40);
      // the event names the reading, not its energy: redraw from the rollups, at most every 3 s
      if (/^(MeterReading|TokensMinted)/.test(event.type) && !this.redraw) {
        this.redraw = setTimeout(() => { this.redraw = null; this.refresh(); }, 3000);
      }
    },
  }));

  Alpine.data("meters", () => ({
    meters: [], selected: null, rollup: "hourly", keys: [], rejections: [], error: "", notice: "",
    claim: { serial: "", meter_key: "" },
    async init() {
      lineChart(this.$refs.chart, "Wh", "#2d6cdf");
      this.off = live.on((event) => {
        if (event.type === "MeterReadingRejected") {
          const data = eventData(event);
          this.rejections.unshift({ at: event.at || new Date().toISOString(), serial: data.meter_serial || data.serial || data.meter_id, code: data.code, message: data.message || "" });
          this.rejections = this.rejections.slice(0, 50);
        }
      });
      await this.load();
    },
    destroy() { this.off && this.off(); dropChart(this.$refs.chart || this.$refs.depth); },
    async load() {
      this.error = "";
      try {
        this.meters = await api.get("/api/meters/registered");
        if (this.meters.length && !this.selected) await this.select(this.meters[0]);
      } catch (error) { this.error = error.message; }
    },
    async select(meter) {
      this.selected = meter;
      const days = this.rollup === "daily" ? 30 : 2;
      const from = new Date(Date.now() - days * 86400e3).toISOString();
      const rows = await api.get(`/api/meters/${meter.id}/stats/${this.rollup}?from=${from}`).catch((e) => { this.error = e.message; return []; });
      const chart = chartOf(this.$refs.chart);
      if (chart) {
        chart.data.labels = rows.map((r) => this.rollup === "daily" ? r.bucket_start.slice(0, 10) : fmt.datetime(r.bucket_start));
        chart.data.datasets[0].data = rows.map((r) => r.generation_wh + r.export_wh);
        chart.update();
      }
      this.keys = Alpine.store("session").isAdmin ? await api.get(`/api/admin/devices/${meter.id}/keys`).catch(() => []) : [];
    },
    async doClaim() {
      this.error = ""; this.notice = "";
      try {
        await api.post("/api/meters/verify", this.claim);
        this.notice = `Meter ${this.claim.serial} is yours.`;
        this.claim = { serial: "", meter_key: "" };
        await this.load();
      } catch (error) { this.error = `${error.code}: ${error.message}`; }
    },
    async revoke(key) {
      try { await api.post(`/api/admin/devices/${this.selected.id}/revoke`, { key_id: key.key_id || key.id, reason: "revoked from the dashboard" }); await this.select(this.selected); }
      catch (error) { this.error = `${error.code}: ${error.message}`; }
    },
  }));

  Alpine.data("trading", () => ({
    book: { bids: [], asks: [] }, orders: [], epochs: [], status: null, error: "", notice: "",
    form: { order_type: "buy", energy_amount: "1.0", price_per_kwh: "0.15" }, verdicts: {},
    async init() {
      keepChart(this.$refs.depth, {
        type: "line",
        data: { datasets: [
          { label: "bids", data: [], borderColor: "#0e9f6e", backgroundColor: "#0e9f6e33", stepped: true, fill: true },
          { label: "asks", data: [], borderColor: "#d64545", backgroundColor: "#d6454533", stepped: true, fill: true },
        ] },
        options: { responsive: true, maintainAspectRatio: false, animation: false, parsing: false,
          scales: { x: { type: "linear", title: { display: true, text: "price per kWh" } }, y: { beginAtZero: true, title: { display: true, text: "kWh" } } } },
      });
      this.off = live.on((event) => { if (/^(Order|Epoch|Trade|Settlement)/.test(event.type || "")) this.load(); });
      await this.load();
    },
    destroy() { this.off && this.off(); dropChart(this.$refs.chart || this.$refs.depth); },
    async load() {
      this.error = "";
      try {
        const [book, orders, epochs, status] = await Promise.all([
          api.get("/api/market/orderbook"), api.get("/api/trading/orders"), api.get("/api/market/epochs"), api.get("/api/market/epoch/status"),
        ]);
        this.book = book; this.orders = items(orders); this.epochs = items(epochs); this.status = status;
        this.drawDepth();
      } catch (error) { this.error = error.message; }
    },
    drawDepth() {
      const cumulative = (levels, descending) => {
        const sorted = [...levels].sort((a, b) => (descending ? -1 : 1) * (Number(a.price_per_kwh) - Number(b.price_per_kwh)));
        let sum = 0;
        return sorted.map((l) => ({ x: Number(l.price_per_kwh), y: (sum += Number(l.energy_amount)) }));
      };
      const chart = chartOf(this.$refs.depth);
      if (!chart) return;
      chart.data.datasets[0].data = cumulative(this.book.bids || [], true);
      chart.data.datasets[1].data = cumulative(this.book.asks || [], false);
      chart.update();
    },
    async place() {
      this.error = ""; this.notice = "";
      try {
        const order = await api.post("/api/trading/orders", this.form);
        this.notice = `Order placed (${order.status || "open"}).`;
        await this.load();
      } catch (error) { this.error = `${error.code}: ${error.message}`; }
    },
    async cancel(order) {
      try { await api.del(`/api/trading/orders/${order.id}`); await this.load(); }
      catch (error) { this.error = `${error.code}: ${error.message}`; }
    },
    async verify(epoch) {
      try { const v = await api.get(`/api/market/epochs/${epoch.id}/verify`); this.verdicts[epoch.id] = v.valid ? "valid" : `invalid: ${v.reason || ""}`; }
      catch (error) { this.verdicts[epoch.id] = `${error.code}`; }
    },
  }));

  Alpine.data("certificates", () => ({
    certs: [], meters: [], error: "", notice: "",
    issue: { meter_id: "", period_start: "", period_end: "" },
    async init() { this.off = live.on((e) => { if ((e.type || "").startsWith("Certificate")) this.load(); }); await this.load(); },
    destroy() { this.off && this.off(); },
    async load() {
      this.error = "";
      try {
        [this.certs, this.meters] = await Promise.all([api.get("/api/erc").then(items), api.get("/api/meters/registered")]);
        if (!this.issue.meter_id && this.meters.length) this.issue.meter_id = this.meters[0].id;
      } catch (error) { this.error = error.message; }
    },
    async doIssue() {
      this.error = ""; this.notice = "";
      try {
        const body = { meter_id: this.issue.meter_id, period_start: new Date(this.issue.period_start).toISOString(), period_end: new Date(this.issue.period_end).toISOString() };
        const cert = await api.post("/api/erc/issue", body);
        this.notice = `Certificate issued for ${fmt.kwhFromWh(cert.energy_wh)} kWh.`;
        await this.load();
      } catch (error) { this.error = `${error.code}: ${error.message}`; }
    },
    async transfer(cert) {
      const to = prompt("Transfer to which wallet address?");
      if (!to) return;
      try { await api.post(`/api/erc/${cert.id}/transfer`, { to_wallet: to }); await this.load(); }
      catch (error) { this.error = `${error.code}: ${error.message}`; }
    },
    async retire(cert) {
      const beneficiary = prompt("Retire on behalf of (beneficiary)?");
      if (!beneficiary) return;
      try { await api.post(`/api/erc/${cert.id}/retire`, { beneficiary, purpose: "claimed from the dashboard" }); await this.load(); }
      catch (error) { this.error = `${error.code}: ${error.message}`; }
    },
  }));

  Alpine.data("verify", () => ({
    result: null, error: "", query: "",
    async init() { if (this.param) { this.query = this.param; await this.check(); } },
    async check() {
      this.error = ""; this.result = null;
      const q = this.query.trim();
      if (!q) return;
      const path = /^[1-9A-HJ-NP-Za-km-z]{32,44}$/.test(q) ? `/api/erc/verify?mint=${encodeURIComponent(q)}` : `/api/erc/${encodeURIComponent(q)}/verify`;
      try { this.result = await api.get(path); } catch (error) { this.error = `${error.code}: ${error.message}`; }
    },
  }));

  Alpine.data("admin", () => ({
    tokenization: null, epochs: [], users: [], leases: [], error: "", notice: "",
    async init() { await this.load(); },
    async load() {
      this.error = "";
      const safe = (p, fallback) => p.catch((e) => { this.error = this.error || e.message; return fallback; });
      [this.tokenization, this.epochs, this.users, this.leases] = await Promise.all([
        safe(api.get("/api/admin/tokenization/status"), null),
        safe(api.get("/api/market/epochs").then(items), []),
        safe(api.get("/api/admin/users").then(items), []),
        safe(api.get("/api/admin/leases"), []),
      ]);
    },
    async act(path, label) {
      try { await api.post(path); this.notice = `${label}: done.`; await this.load(); }
      catch (error) { this.error = `${error.code}: ${error.message}`; }
    },
  }));
});

function items(page) { return Array.isArray(page) ? page : (page && (page.items || page.data || page.orders || page.epochs || page.certificates)) || []; }

function describe(type, data) {
  const kwh = (wh) => (wh === undefined ? "" : `${fmt.kwhFromWh(wh)} kWh`);
  switch (type) {
    case "MeterReadingReceived": return `reading from ${data.meter_serial || fmt.short(data.meter_id)} for ${fmt.time(data.interval_start)}`;
    case "MeterReadingRejected": return `reading refused: ${data.code || ""}`;
    case "TokensMinted": return `minted ${data.amount_decimal || data.amount || ""} tokens ${kwh(data.energy_wh ?? data.wh)}`;
    case "TradeExecuted": return `trade of ${kwh(data.energy_wh ?? data.quantity)} in epoch ${data.epoch_id ?? ""}`;
    case "EpochTransition": return `epoch ${data.epoch_id || ""} → ${data.status || data.to || ""}`;
    default: return type.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
  }
}

window.fmt = fmt;
