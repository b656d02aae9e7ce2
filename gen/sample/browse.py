"""browse.html: every sample beside its scores and its nearest real image, sortable and filterable.

A static page (no server, no network, the suite's own JS and CSS inline, images by relative
links) so the sample folder can be zipped and shared. The data is one JSON block; thumbnails load
lazily. The real train images of each class are copied next to it (`browse/reals/`, at the
generator's resolution) so a person sees what "real" looks like at the same size, and a sample's
nearest real can be shown large beside it.

The page keeps its state in the URL hash (`#sort=brightness&dir=desc&class=bad&status=accepted&
score=twosample_score&min=0.2&max=0.6`), so a view can be bookmarked or shared, and a test can
drive it through headless Chromium. Marked samples are exported as `exclude.txt` (one file per
line), which `gen sample --exclude`, `classify train --synthetic-exclude` and `classify ablate
--synthetic-exclude` take.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classify.core.fileio import atomic_write_text
from gen.sample.files import save_png

REALS_SHOWN = 64  # real train images copied per class for the page
BROWSE_NAME = "browse.html"


def image_statistics(images: torch.Tensor) -> dict[str, np.ndarray]:
    """Per image: mean brightness and contrast in [0, 1], and orientation: log of horizontal over
    vertical gradient energy (> 0: structure runs up-down, e.g. vertical lines; < 0: sideways)."""
    x = images.float().mean(1) / 255.0  # [N, H, W]
    dx = (x[:, :, 1:] - x[:, :, :-1]).abs().mean(dim=(1, 2))
    dy = (x[:, 1:, :] - x[:, :-1, :]).abs().mean(dim=(1, 2))
    flat = x.reshape(len(x), -1)
    return {"brightness": flat.mean(1).numpy(), "contrast": flat.std(1, correction=0).numpy(),
            "orientation": torch.log((dx + 1e-6) / (dy + 1e-6)).numpy()}


def _number(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def browse_data(header: list[str], table: list[list[Any]], stats: dict[str, np.ndarray],
                nearest: list[str | None], reals: dict[str, list[str]]) -> dict[str, Any]:
    """The JSON the page embeds: one entry per sample (its csv cells, numeric scores and statistics,
    its nearest real's thumbnail) and the real thumbnails per class."""
    numeric = [h for h in header if h not in ("file", "class", "snapshot", "native_file", "rejected_by",
                                              "nearest_real", "duplicate_of", "seed", "trunc")]
    rows = []
    for i, cells in enumerate(table):
        row = dict(zip(header, cells))
        scores = {k: _number(row.get(k)) for k in numeric}
        scores.update({k: round(float(v[i]), 5) for k, v in stats.items()})
        rows.append({"file": str(row["file"]), "class": str(row["class"]), "seed": row.get("seed"),
                     "accepted": int(_number(row.get("accepted")) or 0),
                     "rejected_by": str(row.get("rejected_by") or ""), "nearest": nearest[i],
                     "nearest_file": str(row.get("nearest_real") or ""), "scores": scores})
    columns = [k for k in (*numeric, *stats) if k not in ("accepted",)]
    return {"columns": columns, "rows": rows, "reals": reals}


def script_json(data: Any) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' can close the element or start markup."""
    return (json.dumps(data, allow_nan=False).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026"))


def write_reals(out: Path, reals_by_class: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Copy up to REALS_SHOWN real train images per class into browse/reals/<k>/ (k: class index
    order, so no class name becomes a path); returns the relative file names per class."""
    shown: dict[str, list[str]] = {}
    for k, (name, images) in enumerate(reals_by_class.items()):
        shown[name] = []
        for j, img in enumerate(images[:REALS_SHOWN]):
            rel = f"browse/reals/{k}/{j:04d}.png"
            save_png(img, out / rel)
            shown[name].append(rel)
    return shown


def nearest_thumbnails(out: Path, class_names: list[str], nearest_index: np.ndarray | None,
                       reals_by_class: dict[str, torch.Tensor]) -> list[str | None]:
    """Per sample, the relative file of its nearest real train image (written on first use)."""
    if nearest_index is None:
        return [None] * len(class_names)
    order = list(reals_by_class)
    written: dict[tuple[str, int], str] = {}
    out_list: list[str | None] = []
    for name, j in zip(class_names, nearest_index.tolist()):
        if j < 0 or name not in reals_by_class:
            out_list.append(None)
            continue
        key = (name, int(j))
        if key not in written:
            written[key] = f"browse/nearest/{order.index(name)}/{int(j):05d}.png"
            save_png(reals_by_class[name][int(j)], out / written[key])
        out_list.append(written[key])
    return out_list


def write_browser(out: Path, header: list[str], table: list[list[Any]], images: torch.Tensor,
                  reals_by_class: dict[str, torch.Tensor], nearest_index: np.ndarray | None) -> Path:
    """Write browse/ and browse.html into the sample folder `out`."""
    classes = [str(dict(zip(header, r))["class"]) for r in table]
    reals = write_reals(out, reals_by_class)
    nearest = nearest_thumbnails(out, classes, nearest_index, reals_by_class)
    data = browse_data(header, table, image_statistics(images), nearest, reals)
    page = (_TEMPLATE.replace("/*STYLE*/", _STYLE).replace("/*SCRIPT*/", _SCRIPT)
            .replace("/*DATA*/", script_json(data)))
    atomic_write_text(out / BROWSE_NAME, page)
    return out / BROWSE_NAME


_STYLE = """body{font-family:system-ui,sans-serif;margin:1em;color:#222}
#bar{position:sticky;top:0;background:#fff;padding:.4em 0;border-bottom:1px solid #ccc;z-index:2}
#bar label{margin-right:.8em;font-size:13px}#count{font-weight:bold;margin-right:1em}
#grid,.reals{display:flex;flex-wrap:wrap;gap:4px}
.card{width:112px;border:2px solid #9c9;font-size:10px;padding:2px;cursor:pointer;position:relative}
.card.rej{border-color:#d99}.card.marked{outline:3px solid #f80}
.card img,.reals img{width:104px;height:104px;image-rendering:pixelated;background:#eee;display:block}
.card .mark{position:absolute;top:2px;right:2px}
#big{display:none;position:fixed;inset:5%;background:#fff;border:2px solid #444;z-index:3;\
padding:1em;overflow:auto}
#big img{width:320px;height:320px;image-rendering:pixelated;margin-right:1em}
#big table{font-size:12px;border-collapse:collapse}#big td{border:1px solid #ccc;padding:1px 6px}
h2{font-size:15px}"""

_TEMPLATE = """<!doctype html><html><head><meta charset="utf-8"><title>Sample browser</title>
<style>/*STYLE*/</style></head><body>
<h1>Sample browser</h1>
<p>Every sample with its scores (<a href="samples.csv">samples.csv</a>, <a href="index.html">filter page</a>).
Click a sample to see it large beside its nearest real train image; tick samples to exclude them and
download <code>exclude.txt</code> (for <code>gen sample --exclude</code> and
<code>classify train/ablate --synthetic-exclude</code>). The view lives in the page address, \
so it can be bookmarked.</p>
<div id="bar">
<span id="count"></span>
<label>class <select id="class"></select></label>
<label>show <select id="status"><option value="all">all</option><option value="accepted">accepted</option>
<option value="rejected">rejected</option></select></label>
<label>sort by <select id="sort"></select></label>
<label><select id="dir"><option value="asc">ascending</option>\
<option value="desc">descending</option></select></label>
<label>range on <select id="score"></select></label>
<label>min <input id="min" type="range" step="any"></label>\
<label>max <input id="max" type="range" step="any"></label>
<span id="range"></span>
<button id="markall">mark everything in this view</button><button id="clear">clear marks</button>
<button id="export">download exclude.txt</button> <span id="marked"></span>
</div>
<h2>Samples</h2><div id="grid"></div>
<h2>Real train images of the class, at the same size</h2><div id="reals" class="reals"></div>
<div id="big"></div>
<pre id="exclude" hidden></pre>
<script type="application/json" id="data">/*DATA*/</script>
<script>/*SCRIPT*/</script>
</body></html>
"""

_SCRIPT = """
const D = JSON.parse(document.getElementById('data').textContent);
const $ = id => document.getElementById(id);
const cards = [], marked = new Set();
const text = s => document.createTextNode(String(s));
function el(tag, attrs, kids) {
  const e = document.createElement(tag);
  for (const k in (attrs || {})) e.setAttribute(k, attrs[k]);
  (kids || []).forEach(c => e.appendChild(typeof c === 'string' ? text(c) : c));
  return e;
}
function fmt(v) { return v === null || v === undefined ? '' : \
(Math.abs(v) >= 100 || Number.isInteger(v) ? String(v) : v.toFixed(3)); }
function state() {
  const s = {sort: 'seed', dir: 'asc', class: 'all', status: 'all', score: D.columns[0] || '', \
min: '', max: '', markall: ''};
  new URLSearchParams(location.hash.slice(1)).forEach((v, k) => { s[k] = v; });
  return s;
}
function setHash(s) { history.replaceState(null, '', '#' + new URLSearchParams(s).toString()); }
function options(select, values, chosen) {
  select.textContent = '';
  values.forEach(v => { const o = el('option', {value: v}, [v]); \
if (v === chosen) o.selected = true; select.appendChild(o); });
}
function bounds(col) {
  let lo = Infinity, hi = -Infinity;
  D.rows.forEach(r => { const v = r.scores[col]; if (v !== null && v !== undefined) \
{ lo = Math.min(lo, v); hi = Math.max(hi, v); } });
  return lo <= hi ? [lo, hi] : [0, 1];
}
function build() {
  D.rows.forEach((r, i) => {
    const box = el('input', {type: 'checkbox', class: 'mark', title: 'mark for exclude.txt'});
    box.addEventListener('click', e => { e.stopPropagation(); toggle(i, box.checked); });
    const card = el('div', {class: 'card' + (r.accepted ? '' : ' rej'), 'data-file': r.file, 'data-row': i}, [
      el('img', {src: url(r.file), loading: 'lazy', alt: r.file}), box,
      el('div', {}, ['seed ' + r.seed + ' · ' + r['class']]),
      el('div', {}, [r.accepted ? 'accepted' : 'rejected: ' + r.rejected_by])]);
    card.addEventListener('click', () => show(i));
    cards.push(card);
  });
}
function toggle(i, on, later) {
  if (on) marked.add(i); else marked.delete(i);
  cards[i].classList.toggle('marked', on);
  cards[i].querySelector('.mark').checked = on;
  if (!later) exportList();
}
function markMany(rows, on) { rows.forEach(i => toggle(i, on, true)); exportList(); }
function exportList() {  // once per user action, not per marked sample
  const lines = [...marked].sort((a, b) => a - b).map(k => D.rows[k].file);
  $('exclude').textContent = lines.join('\\n') + (lines.length ? '\\n' : '');
  $('marked').textContent = marked.size + ' marked';
}
function url(path) { return path.split('/').map(encodeURIComponent).join('/'); }
function visible(s) {
  const lo = s.min === '' ? -Infinity : parseFloat(s.min), hi = s.max === '' ? Infinity : parseFloat(s.max);
  return D.rows.map((r, i) => i).filter(i => {
    const r = D.rows[i], v = r.scores[s.score];
    if (s['class'] !== 'all' && r['class'] !== s['class']) return false;
    if (s.status === 'accepted' && !r.accepted) return false;
    if (s.status === 'rejected' && r.accepted) return false;
    if ((lo > -Infinity || hi < Infinity) && \
(v === null || v === undefined || v < lo || v > hi)) return false;
    return true;
  });
}
function render() {
  const s = state(), grid = $('grid');
  const key = i => { const v = s.sort === 'seed' ? Number(D.rows[i].seed) : D.rows[i].scores[s.sort];
                     return v === null || v === undefined ? NaN : v; };
  const rows = visible(s).sort((a, b) => {
    const x = key(a), y = key(b);
    if (isNaN(x) !== isNaN(y)) return isNaN(x) ? 1 : -1;  // empty cells last either way
    return (x < y ? -1 : x > y ? 1 : a - b) * (s.dir === 'desc' && x !== y ? -1 : 1);
  });
  grid.textContent = '';
  const frag = document.createDocumentFragment();
  rows.forEach(i => frag.appendChild(cards[i]));
  grid.appendChild(frag);
  grid.setAttribute('data-shown', rows.length);
  grid.setAttribute('data-order', rows.map(i => D.rows[i].seed).join(','));
  $('count').textContent = rows.length + ' of ' + D.rows.length + ' samples';
  if (s.markall === '1') markMany(rows, true);
  const reals = $('reals'); reals.textContent = '';
  Object.keys(D.reals).filter(c => s['class'] === 'all' || c === s['class']).forEach(c =>
    D.reals[c].forEach(f => reals.appendChild(el('img', {src: url(f), loading: 'lazy', alt: c, title: c}))));
  const [lo, hi] = bounds(s.score);
  ['min', 'max'].forEach(k => { const inp = $(k); inp.min = lo; inp.max = hi; \
inp.step = (hi - lo) / 200 || 0.001;
    inp.value = s[k] === '' ? (k === 'min' ? lo : hi) : s[k]; });
  $('range').textContent = '[' + fmt(parseFloat($('min').value)) + ', ' + \
fmt(parseFloat($('max').value)) + ']';
}
function show(i) {
  const r = D.rows[i], big = $('big');
  big.textContent = '';
  const rows = Object.keys(r.scores).map(k => el('tr', {}, \
[el('td', {}, [k]), el('td', {}, [fmt(r.scores[k])])]));
  big.appendChild(el('p', {}, [el('button', {id: 'close'}, ['close']), ' ', r.file, ' (' + r['class'] + ', ' +
    (r.accepted ? 'accepted' : 'rejected by ' + r.rejected_by) + ')']));
  big.appendChild(el('img', {src: url(r.file), alt: 'sample'}));
  if (r.nearest) big.appendChild(el('img', {src: url(r.nearest), alt: 'nearest real ' + r.nearest_file}));
  big.appendChild(el('p', {}, [r.nearest ? \
'left: the sample; right: its nearest real train image ' + r.nearest_file :
    'no nearest real (the memorisation filter did not run)']));
  big.appendChild(el('table', {}, rows));
  big.style.display = 'block';
  $('close').addEventListener('click', () => { big.style.display = 'none'; });
}
function wire() {
  const s = state();
  options($('class'), ['all', ...new Set(D.rows.map(r => r['class']))], s['class']);
  options($('sort'), ['seed', ...D.columns], s.sort);
  options($('score'), D.columns, s.score);
  $('status').value = s.status; $('dir').value = s.dir;
  const change = extra => { const t = \
Object.assign(state(), {'class': $('class').value, status: $('status').value,
    sort: $('sort').value, dir: $('dir').value, score: $('score').value, markall: ''}, extra || {}); \
setHash(t); render(); };
  ['class', 'status', 'sort', 'dir'].forEach(id => $(id).addEventListener('change', () => change()));
  $('score').addEventListener('change', () => change({min: '', max: ''}));
  ['min', 'max'].forEach(id => $(id).addEventListener('input', () => change({[id]: $(id).value})));
  $('markall').addEventListener('click', () => markMany(visible(state()), true));
  $('clear').addEventListener('click', () => markMany([...marked], false));
  $('export').addEventListener('click', () => {
    const a = el('a', {download: 'exclude.txt', \
href: URL.createObjectURL(new Blob([$('exclude').textContent], {type: 'text/plain'}))});
    document.body.appendChild(a); a.click(); a.remove();
  });
  window.addEventListener('hashchange', render);
}
const t0 = performance.now();
build(); wire(); render();
document.body.setAttribute('data-ready-ms', Math.round(performance.now() - t0));
"""
