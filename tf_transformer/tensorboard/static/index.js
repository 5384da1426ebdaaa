// Attention dashboard: TensorBoard loads this ES module in an iframe whose base URL is
// data/plugin/attention/, and calls render(). Plain DOM + SVG + canvas, no build step.
//
// One sentence (a logged probe at a step, or a sentence typed into the box, run through the
// export), one kind of attention (encoder self, decoder self, encoder-decoder) at a time:
//   - model view: a thumbnail per layer x head (and the mean over heads per layer); a click
//     focuses that head (or mean) in the two views beside it.
//   - token view: query tokens (left) and key tokens (right) joined by lines whose opacity is
//     the weight; hovering a token keeps only its lines and shades the other side.
//   - heatmap: rows = queries, columns = keys, on a colour scale; hovering a cell shows its
//     value and highlights its two tokens in both views.
// The focused head (or the mean) is shown by default; "all heads" draws every head of the layer.
// SentencePiece's word-start marker "▁" is not shown: pieces that continue a word get a faint
// "·" instead, and "merge subwords" joins the pieces of each word (summing the weight a word
// receives over its pieces, averaging the weight a word gives over its pieces).

const KIND_LABELS = {
  encoder_self: 'Encoder self-attention',
  decoder_self: 'Decoder self-attention',
  cross: 'Encoder-decoder (cross) attention',
};
const FIELD_LABELS = {source_tokens: 'source', target_tokens: 'decoder input'};
const WORD_START = '\u2581'; // SentencePiece's "▁".
const SPECIAL_TOKEN = /^<[^<>\s]+>$/; // <s>, </s>, <unk>, <pad>.
// Colour-blind-friendly categorical palette (Tableau 10), one colour per head in "all heads".
const HEAD_COLORS = [
  '#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f',
  '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac',
];
// Viridis at 9 evenly spaced stops: perceptually uniform, readable on light and dark pages.
const VIRIDIS = [
  [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
  [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37],
];
// Lines lighter than this are invisible anyway; skipping them keeps the SVG small.
const MIN_LINE_WEIGHT = 0.01;
const SVG_NS = 'http://www.w3.org/2000/svg';
const CHAR_WIDTH = 7.4; // px per character of the 12px monospace token font.
const TYPED = 'typed:';

export async function render() {
  const stylesheet = document.createElement('link');
  stylesheet.rel = 'stylesheet';
  stylesheet.href = new URL('./style.css', import.meta.url).href;
  document.head.appendChild(stylesheet);
  followDarkMode();
  const dashboard = new AttentionDashboard(document.body);
  await dashboard.start();
}

// TensorBoard marks dark mode with a class on its own body; this iframe is same-origin, so
// follow it when reachable, else the browser's preference.
function followDarkMode() {
  const media = window.matchMedia('(prefers-color-scheme: dark)');
  let parentBody = null;
  try {
    parentBody = window.parent !== window ? window.parent.document.body : null;
  } catch (error) {
    parentBody = null; // Cross-origin parent.
  }
  const update = () => {
    const dark = parentBody ? parentBody.classList.contains('dark-mode') : media.matches;
    document.documentElement.classList.toggle('dark', dark);
  };
  update();
  media.addEventListener('change', update);
  if (parentBody) {
    new MutationObserver(update).observe(parentBody, {attributes: true, attributeFilter: ['class']});
  }
}

export function colorOf(weight) {
  const position = Math.max(0, Math.min(1, weight)) * (VIRIDIS.length - 1);
  const index = Math.min(VIRIDIS.length - 2, Math.floor(position));
  const fraction = position - index;
  const [a, b] = [VIRIDIS[index], VIRIDIS[index + 1]];
  const channel = (i) => Math.round(a[i] + (b[i] - a[i]) * fraction);
  return `rgb(${channel(0)}, ${channel(1)}, ${channel(2)})`;
}

function headColor(head) {
  return HEAD_COLORS[head % HEAD_COLORS.length];
}

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === 'text') node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.appendChild(child);
  return node;
}

function svgElement(tag, attributes = {}, children = []) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === 'text') node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.appendChild(child);
  return node;
}

async function fetchJson(route, params = {}) {
  const query = new URLSearchParams(params).toString();
  const response = await fetch(query ? `./${route}?${query}` : `./${route}`);
  if (!response.ok) {
    throw new Error(`${route}: HTTP ${response.status} ${await response.text()}`);
  }
  return response.json();
}

function labelled(label, control, id) {
  return element('label', {class: 'picker', ...(id ? {id} : {})}, [element('span', {text: label}), control]);
}

function setOptions(select, options, selected) {
  select.replaceChildren(
    ...options.map(({value, label}) => element('option', {value: String(value), text: label})),
  );
  const values = options.map(({value}) => String(value));
  select.value = values.includes(String(selected)) ? String(selected) : values[0] ?? '';
  return select.value;
}

// ---- Pieces and words -------------------------------------------------------------------

// How a piece reads: its text without "▁", and whether it continues the word before it
// (`previous` is the piece before it; undefined for the first).
export function readPiece(piece, previous) {
  if (piece === WORD_START) return {text: '', joins: false, space: true}; // A space on its own.
  if (piece.startsWith(WORD_START)) return {text: piece.slice(WORD_START.length), joins: false};
  const joins = previous !== undefined && !SPECIAL_TOKEN.test(piece) && !SPECIAL_TOKEN.test(previous);
  return {text: piece, joins};
}

// Plain text of a piece sequence, as the detokenizer would write it.
export function detokenize(pieces) {
  return pieces
    .filter((piece) => !SPECIAL_TOKEN.test(piece))
    .join('')
    .split(WORD_START).join(' ')
    .trim();
}

// Groups piece indices into words: a piece that continues a word joins the group before it.
export function wordGroups(pieces) {
  const groups = [];
  pieces.forEach((piece, index) => {
    if (readPiece(piece, pieces[index - 1]).joins) groups[groups.length - 1].push(index);
    else groups.push([index]);
  });
  return groups;
}

// Merges a [Tq][Tk] matrix into words: sum over the key pieces of a word (what a word
// receives), mean over the query pieces (what a word gives), so each row still sums to 1.
export function mergeMatrix(matrix, queryGroups, keyGroups) {
  return queryGroups.map((rows) => keyGroups.map((columns) => {
    let total = 0;
    for (const q of rows) for (const k of columns) total += matrix[q][k];
    return total / rows.length;
  }));
}

function meanOverHeads(layer) { // [N][Tq][Tk] -> [Tq][Tk]
  return layer[0].map((row, q) => row.map((_, k) =>
    layer.reduce((sum, head) => sum + head[q][k], 0) / layer.length));
}

// Tokens of one axis as shown: [{text, joins, raw, predicts}] (predicts: decoder rows only).
function axisTokens(pieces, predicted, merge) {
  if (!merge) {
    return pieces.map((piece, index) => ({
      ...readPiece(piece, pieces[index - 1]), raw: piece,
      predicts: predicted ? readPiece(predicted[index], piece) : null,
    }));
  }
  return wordGroups(pieces).map((group) => ({
    text: detokenize(group.map((i) => pieces[i])) || pieces[group[0]],
    joins: false,
    raw: group.map((i) => pieces[i]).join(' '),
    predicts: predicted ? {
      text: group.map((i, n) => {
        const {text, joins} = readPiece(predicted[i], pieces[i]);
        return n > 0 && !joins ? ` ${text}` : text;
      }).join(''),
      joins: false,
    } : null,
  }));
}

// ---- The dashboard ----------------------------------------------------------------------

class AttentionDashboard {
  constructor(root) {
    this.root = root;
    this.cache = new Map();
    this.state = {
      run: null, sentence: null, step: null, kind: null,
      layer: 0, head: 'mean', allHeads: false, merge: false, stretch: false,
    };
    this.probes = [];
    this.steps = [];
    this.typed = []; // Sentences typed into the box, newest first.
    this.data = null;
    this.highlighters = [];

    this.runSelect = element('select', {id: 'run-select'});
    this.sentenceSelect = element('select', {id: 'sentence-select'});
    this.stepSlider = element('input', {id: 'step-slider', type: 'range', min: '0', max: '0', step: '1'});
    this.stepLabel = element('output', {id: 'step-label', class: 'step-label'});
    this.kindSelect = element('select', {id: 'kind-select'});
    this.focusLabel = element('span', {id: 'focus-label', class: 'focus-label'});
    this.meanButton = element('button', {id: 'mean-button', type: 'button', text: 'Mean over heads'});
    this.allHeadsBox = element('input', {id: 'all-heads', type: 'checkbox'});
    this.mergeBox = element('input', {id: 'merge-words', type: 'checkbox'});
    this.reloadButton = element('button', {id: 'reload', type: 'button', text: 'Reload'});
    this.sentenceInput = element('input', {
      id: 'sentence-input', type: 'text', placeholder: 'Type a sentence to translate…', autocomplete: 'off',
    });
    this.sentenceForm = element('form', {id: 'sentence-form', class: 'sentence-form', hidden: ''}, [
      element('span', {class: 'form-label', text: 'Inspect any sentence'}),
      this.sentenceInput,
      element('button', {id: 'sentence-submit', type: 'submit', text: 'Translate'}),
      element('span', {id: 'export-dir', class: 'hint'}),
    ]);
    this.stepPicker = labelled('Step', element('span', {class: 'slider'}, [this.stepSlider, this.stepLabel]), 'step-picker');
    this.status = element('div', {id: 'status', class: 'status', role: 'status'});
    this.caption = element('div', {id: 'caption', class: 'caption'});
    this.modelView = element('div', {id: 'model-view', class: 'model-view'});
    this.tokenView = element('div', {id: 'token-view', class: 'token-view'});
    this.matrixView = element('div', {id: 'matrix-view', class: 'matrix-view'});
    this.colorScale = element('div', {id: 'color-scale', class: 'color-scale'});
    this.tooltip = element('div', {id: 'tooltip', class: 'tooltip', hidden: ''});

    root.replaceChildren(
      element('div', {class: 'controls'}, [
        labelled('Run', this.runSelect),
        labelled('Sentence', this.sentenceSelect),
        this.stepPicker,
        this.reloadButton,
      ]),
      this.sentenceForm,
      element('div', {class: 'controls'}, [
        labelled('Attention', this.kindSelect),
        element('span', {class: 'picker'}, [element('span', {text: 'Showing'}), this.focusLabel]),
        this.meanButton,
        element('label', {class: 'check'}, [this.allHeadsBox, element('span', {text: 'All heads of the layer'})]),
        element('label', {class: 'check'}, [this.mergeBox, element('span', {text: 'Merge subwords into words'})]),
      ]),
      this.status,
      this.caption,
      element('div', {class: 'layout'}, [
        element('section', {class: 'model-section'}, [
          element('h3', {text: 'Model view', title: 'Every layer and head; click one to focus it'}),
          this.modelView,
        ]),
        element('section', {class: 'token-section'}, [element('h3', {text: 'Tokens'}), this.tokenView]),
        element('section', {class: 'matrix-section'}, [
          element('h3', {text: 'Heatmap'}), this.colorScale, this.matrixView,
        ]),
      ]),
      this.tooltip,
    );

    this.runSelect.addEventListener('change', () => this.guard(() => this.selectRun(this.runSelect.value)));
    this.sentenceSelect.addEventListener('change',
      () => this.guard(() => this.selectSentence(this.sentenceSelect.value)));
    this.stepSlider.addEventListener('input', () => {
      this.state.step = this.steps[Number(this.stepSlider.value)];
      this.stepLabel.textContent = String(this.state.step);
      clearTimeout(this.stepTimer);
      this.stepTimer = setTimeout(() => this.guard(() => this.load()), 120);
    });
    this.kindSelect.addEventListener('change', () => {
      this.state.kind = this.kindSelect.value;
      this.guard(() => this.load());
    });
    this.meanButton.addEventListener('click', () => this.focus(this.state.layer, 'mean'));
    this.allHeadsBox.addEventListener('change', () => {
      this.state.allHeads = this.allHeadsBox.checked;
      this.draw();
    });
    this.mergeBox.addEventListener('change', () => {
      this.state.merge = this.mergeBox.checked;
      this.draw();
    });
    this.reloadButton.addEventListener('click', () => {
      this.cache.clear();
      this.guard(() => this.start());
    });
    this.sentenceForm.addEventListener('submit', (event) => {
      event.preventDefault();
      this.guard(() => this.inspect(this.sentenceInput.value));
    });
    // Redraw to fit when the window's width changes (not its height, which drawing changes).
    let resizeTimer = null;
    let drawnWidth = root.clientWidth;
    new ResizeObserver(() => {
      if (root.clientWidth === drawnWidth) return;
      drawnWidth = root.clientWidth;
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => this.draw(), 100);
    }).observe(root);
  }

  async guard(action) {
    try {
      this.status.textContent = '';
      await action();
    } catch (error) {
      this.status.textContent = `Error: ${error.message}`;
    }
  }

  async start() {
    await this.guard(async () => {
      const config = await fetchJson('config');
      this.sentenceForm.hidden = !config.export_dir;
      this.root.querySelector('#export-dir').textContent =
        config.export_dir ? `runs the attention signature of ${config.export_dir}` : '';
      const runs = await fetchJson('runs');
      if (runs.length === 0 && !config.export_dir) {
        this.status.textContent =
          'No attention data in this logdir. Training writes it every epoch; ' +
          'tft-inspect writes it for an exported model.';
        return;
      }
      const run = setOptions(this.runSelect, runs.map((r) => ({value: r, label: r})), this.state.run);
      await this.selectRun(run);
    });
  }

  async selectRun(run) {
    this.state.run = run || null;
    this.probes = run ? await fetchJson('probes', {run}) : [];
    this.fillSentences();
    await this.selectSentence(this.sentenceSelect.value);
  }

  fillSentences() {
    const options = [
      ...this.typed.map((text) => ({value: TYPED + text, label: `typed: ${text}`})),
      ...this.probes.map((p) => ({value: p.probe, label: `${p.probe}: ${detokenize(p.source_tokens)}`})),
    ];
    setOptions(this.sentenceSelect, options, this.state.sentence);
  }

  async selectSentence(sentence) {
    this.state.sentence = sentence || null;
    const typed = this.isTyped();
    this.stepPicker.hidden = typed;
    if (!sentence) return;
    let kinds = ['encoder_self', 'decoder_self', 'cross'];
    if (!typed) {
      this.steps = await fetchJson('steps', {run: this.state.run, probe: sentence});
      const index = this.steps.includes(this.state.step) ?
        this.steps.indexOf(this.state.step) : this.steps.length - 1;
      this.stepSlider.max = String(Math.max(0, this.steps.length - 1));
      this.stepSlider.value = String(index);
      this.stepSlider.disabled = this.steps.length < 2;
      this.state.step = this.steps[index];
      this.stepLabel.textContent = `${this.state.step} (${index + 1} of ${this.steps.length})`;
      kinds = this.probes.find((p) => p.probe === sentence)?.kinds ?? [];
    }
    this.state.kind = setOptions(
      this.kindSelect, kinds.map((k) => ({value: k, label: KIND_LABELS[k] ?? k})), this.state.kind,
    );
    await this.load();
  }

  isTyped() {
    return (this.state.sentence ?? '').startsWith(TYPED);
  }

  async inspect(text) {
    text = text.trim();
    if (!text) throw new Error('Type a sentence first.');
    this.status.textContent = 'Translating…';
    this.typed = [text, ...this.typed.filter((t) => t !== text)];
    this.state.sentence = TYPED + text;
    this.fillSentences();
    await this.selectSentence(this.state.sentence);
    this.status.textContent = '';
  }

  async load() {
    const {run, sentence, step, kind} = this.state;
    if (!kind || !sentence) return;
    const typed = this.isTyped();
    const params = typed ? {text: sentence.slice(TYPED.length), kind} : {run, probe: sentence, step, kind};
    const key = JSON.stringify(params);
    if (!this.cache.has(key)) {
      this.cache.set(key, await fetchJson(typed ? 'inspect' : 'attention', params));
    }
    this.data = this.cache.get(key);
    this.state.layer = Math.min(this.state.layer, this.data.num_layers - 1);
    if (this.state.head !== 'mean' && this.state.head >= this.data.num_heads) this.state.head = 'mean';
    this.draw();
  }

  focus(layer, head) {
    this.state.layer = layer;
    this.state.head = head;
    this.draw();
  }

  // What is drawn for the data at hand: tokens as read, and weights merged into words if asked.
  view() {
    const data = this.data;
    const merge = this.state.merge;
    const isDecoderQuery = data.query_field === 'target_tokens';
    const queries = axisTokens(data.query_tokens, isDecoderQuery ? data.predicted_tokens : null, merge);
    const keys = axisTokens(data.key_tokens, null, merge);
    let weights = data.weights; // [L][N][Tq][Tk]
    if (merge) {
      const queryGroups = wordGroups(data.query_tokens);
      const keyGroups = wordGroups(data.key_tokens);
      weights = weights.map((layer) => layer.map((head) => mergeMatrix(head, queryGroups, keyGroups)));
    }
    const means = weights.map(meanOverHeads); // [L][Tq][Tk]
    return {queries, keys, weights, means};
  }

  draw() {
    if (!this.data) return;
    const data = this.data;
    const view = this.view();
    const {layer, head, allHeads} = this.state;
    const headLabel = head === 'mean' ? `mean of ${data.num_heads} heads` : `head ${head}`;
    this.focusLabel.textContent = allHeads ?
      `layer ${layer}, all ${data.num_heads} heads` : `layer ${layer}, ${headLabel}`;
    this.meanButton.disabled = head === 'mean';
    this.drawCaption(view);
    this.highlighters = [];
    this.drawModelView(view);
    const shown = allHeads ?
      [...Array(data.num_heads).keys()].map((h) => ({head: h, matrix: view.weights[layer][h]})) :
      [{head, matrix: head === 'mean' ? view.means[layer] : view.weights[layer][head]}];
    // Colours and line opacities run from 0 to 1, so heads compare; "stretch" runs them to the
    // largest weight shown instead, to read the pattern of a head that spreads its attention.
    this.scaleMax = !this.state.stretch ? 1 :
      Math.max(1e-6, ...shown.map(({matrix}) => Math.max(...matrix.flat())));
    this.tokenView.replaceChildren(this.drawTokenView(view, shown));
    this.matrixView.replaceChildren(...shown.map(({head: h, matrix}) => this.drawMatrix(view, matrix, h, shown.length)));
    this.colorScale.replaceChildren(this.drawColorScale());
  }

  drawCaption(view) {
    const data = this.data;
    const where = this.isTyped() ? 'typed sentence' : `${data.probe}, step ${data.step}`;
    const rows = data.query_field === 'target_tokens' ?
      'Rows are decoder inputs; each predicts the token shown beside it (the next one).' :
      'Rows are source tokens attending to the source.';
    const hint = this.state.merge ? 'Pieces merged into words.' : '· marks a piece that continues the word before it.';
    this.caption.replaceChildren(
      element('span', {class: 'label', text: 'source'}),
      element('span', {class: 'sentence', id: 'source-text', text: detokenize(data.source_tokens)}),
      element('span', {class: 'label', text: 'translation'}),
      element('span', {class: 'sentence', id: 'translation-text',
        text: data.translation ?? detokenize(data.target_tokens)}),
      element('span', {class: 'label', text: where}),
      element('span', {class: 'hint', text: `${KIND_LABELS[data.kind]}. ${rows} ${hint}`}),
    );
  }

  drawModelView(view) {
    const {num_layers: layers, num_heads: heads} = this.data;
    // About a third of the window, thumbnails between 28 and 80 px.
    const available = Math.max(240, Math.min(560, (this.root.clientWidth || 1200) * 0.32));
    const size = Math.max(28, Math.min(80, Math.floor((available - 50) / (heads + 1)) - 4));
    const grid = element('div', {class: 'thumbs'});
    grid.style.gridTemplateColumns = `auto repeat(${heads}, ${size}px) ${size}px`;
    grid.appendChild(element('span', {class: 'axis-label', text: 'head'}));
    for (let h = 0; h < heads; h++) grid.appendChild(element('span', {class: 'axis-label', text: String(h)}));
    grid.appendChild(element('span', {class: 'axis-label', text: 'mean'}));
    for (let l = 0; l < layers; l++) {
      grid.appendChild(element('span', {class: 'axis-label row', text: `layer ${l}`}));
      for (let h = 0; h < heads; h++) {
        grid.appendChild(this.thumbnail(view.weights[l][h], l, h, size));
      }
      grid.appendChild(this.thumbnail(view.means[l], l, 'mean', size));
    }
    this.modelView.replaceChildren(grid);
  }

  thumbnail(matrix, layer, head, size) {
    const canvas = element('canvas', {
      class: head === 'mean' ? 'thumb mean' : 'thumb', 'data-layer': String(layer), 'data-head': String(head),
      title: head === 'mean' ? `layer ${layer}, mean over heads` : `layer ${layer}, head ${head}`,
    });
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(size * ratio);
    canvas.height = Math.round(size * ratio);
    canvas.style.width = canvas.style.height = `${size}px`;
    const context = canvas.getContext('2d');
    const rows = matrix.length;
    const columns = matrix[0].length;
    const cellWidth = canvas.width / columns;
    const cellHeight = canvas.height / rows;
    // On 0 to 1 like the heatmap; stretched, each to its own largest weight.
    const largest = this.state.stretch ? Math.max(1e-6, ...matrix.flat()) : 1;
    matrix.forEach((row, q) => row.forEach((weight, k) => {
      context.fillStyle = colorOf(weight / largest);
      context.fillRect(k * cellWidth, q * cellHeight, Math.ceil(cellWidth), Math.ceil(cellHeight));
    }));
    const {layer: focusedLayer, head: focusedHead, allHeads} = this.state;
    if (layer === focusedLayer && (head === focusedHead || (allHeads && head !== 'mean'))) {
      canvas.classList.add('selected');
    }
    canvas.addEventListener('click', () => this.focus(layer, head));
    return canvas;
  }

  drawTokenView(view, shown) {
    const {queries, keys} = view;
    const hasPredictions = queries.some((token) => token.predicts);
    const width = Math.max(260, this.tokenView.clientWidth || 360);
    const textWidth = (tokens, pick) => Math.max(...tokens.map((t) => (pick(t)?.text.length ?? 0) + 1)) * CHAR_WIDTH;
    // Columns at least as wide as their titles ("predicts", "decoder input").
    const predictsWidth = hasPredictions ? Math.max(textWidth(queries, (t) => t.predicts), 56) + 14 : 0;
    const queryWidth = Math.max(textWidth(queries, (t) => t), 90);
    const keyWidth = Math.max(textWidth(keys, (t) => t), 48);
    const queryX = predictsWidth + queryWidth + 6;
    const keyX = Math.max(queryX + 90, width - keyWidth - 6);
    const rowHeight = 20;
    const top = 30;
    const height = top + rowHeight * Math.max(queries.length, keys.length) + 6;
    const svg = svgElement('svg', {
      class: 'tokens', width: keyX + keyWidth + 6, height, 'data-kind': this.data.kind,
    });
    const rowY = (index) => top + rowHeight * index + rowHeight / 2;
    if (hasPredictions) {
      svg.appendChild(svgElement('text', {x: predictsWidth - 14, y: 14, class: 'column-title', 'text-anchor': 'end', text: 'predicts'}));
    }
    svg.appendChild(svgElement('text', {
      x: queryX, y: 14, class: 'column-title', 'text-anchor': 'end', text: FIELD_LABELS[this.data.query_field],
    }));
    svg.appendChild(svgElement('text', {x: keyX, y: 14, class: 'column-title', text: FIELD_LABELS[this.data.key_field]}));

    const lines = svgElement('g', {class: 'lines'});
    for (const {head, matrix} of shown) {
      const group = svgElement('g', {'data-head': head, class: shown.length > 1 ? 'head-lines colored' : 'head-lines'});
      if (shown.length > 1) group.setAttribute('stroke', headColor(head));
      matrix.forEach((row, q) => row.forEach((weight, k) => {
        const strength = weight / this.scaleMax;
        if (strength < MIN_LINE_WEIGHT) return;
        group.appendChild(svgElement('line', {
          x1: queryX + 6, y1: rowY(q), x2: keyX - 6, y2: rowY(k),
          'stroke-opacity': strength.toFixed(3), 'stroke-width': (0.5 + 3 * strength).toFixed(2),
          'data-q': q, 'data-k': k,
        }));
      }));
      lines.appendChild(group);
    }
    svg.appendChild(lines);

    const tokenGroup = (token, index, side) => {
      const isQuery = side === 'query';
      const x = isQuery ? queryX : keyX;
      const textWidthPx = isQuery ? queryWidth : keyWidth;
      const group = svgElement('g', {class: `token ${side}`, 'data-index': index, 'data-raw': token.raw});
      const background = svgElement('rect', {
        x: isQuery ? x - textWidthPx : x - 3, y: rowY(index) - rowHeight / 2 + 2,
        width: textWidthPx + 3, height: rowHeight - 4, rx: 3, class: 'token-bg',
      });
      group.appendChild(background);
      group.appendChild(pieceText(token, {x, y: rowY(index) + 4, 'text-anchor': isQuery ? 'end' : 'start'}));
      if (token.predicts) {
        group.appendChild(pieceText(token.predicts, {
          x: predictsWidth - 14, y: rowY(index) + 4, 'text-anchor': 'end', class: 'predicts',
        }));
        group.appendChild(svgElement('text', {x: predictsWidth - 10, y: rowY(index) + 4, class: 'arrow', text: '←'}));
      }
      svg.appendChild(group);
      return {group, background};
    };
    const queryNodes = queries.map((token, q) => tokenGroup(token, q, 'query'));
    const keyNodes = keys.map((token, k) => tokenGroup(token, k, 'key'));

    const meanWeight = (q, k) => shown.reduce((sum, {matrix}) => sum + matrix[q][k], 0) / shown.length;
    const clear = () => {
      svg.classList.remove('focus');
      for (const line of svg.querySelectorAll('line.active')) line.classList.remove('active');
      for (const {group, background} of [...queryNodes, ...keyNodes]) {
        group.classList.remove('hovered');
        background.style.fillOpacity = '';
      }
      for (const highlight of this.highlighters) highlight(null);
    };
    const focusToken = (side, index) => {
      clear();
      svg.classList.add('focus');
      const attribute = side === 'query' ? 'data-q' : 'data-k';
      for (const line of svg.querySelectorAll(`line[${attribute}="${index}"]`)) line.classList.add('active');
      (side === 'query' ? queryNodes : keyNodes)[index].group.classList.add('hovered');
      const others = side === 'query' ? keyNodes : queryNodes;
      others.forEach(({background}, other) => {
        const weight = side === 'query' ? meanWeight(index, other) : meanWeight(other, index);
        background.style.fillOpacity = Math.min(1, weight / this.scaleMax).toFixed(3);
      });
      for (const highlight of this.highlighters) highlight(side, index);
    };
    queryNodes.forEach(({group}, q) => {
      group.addEventListener('mouseenter', () => focusToken('query', q));
      group.addEventListener('mouseleave', clear);
    });
    keyNodes.forEach(({group}, k) => {
      group.addEventListener('mouseenter', () => focusToken('key', k));
      group.addEventListener('mouseleave', clear);
    });
    // A heatmap cell under the pointer highlights its query and key token here.
    this.highlightPair = (q, k) => {
      for (const [nodes, index] of [[queryNodes, q], [keyNodes, k]]) {
        nodes.forEach(({group}, i) => group.classList.toggle('highlight', i === index));
      }
      svg.classList.toggle('pair', q !== null);
      for (const line of svg.querySelectorAll('line.pair')) line.classList.remove('pair');
      if (q !== null) {
        for (const line of svg.querySelectorAll(`line[data-q="${q}"][data-k="${k}"]`)) line.classList.add('pair');
      }
    };
    return svg;
  }

  drawMatrix(view, matrix, head, count) {
    const {queries, keys} = view;
    const hasPredictions = queries.some((token) => token.predicts);
    const chars = (tokens, pick) => Math.max(...tokens.map((t) => (pick(t)?.text.length ?? 0) + 1));
    const predictsWidth = hasPredictions ? chars(queries, (t) => t.predicts) * 6.6 + 16 : 0;
    const left = predictsWidth + chars(queries, (t) => t) * 6.6 + 8;
    const top = chars(keys, (t) => t) * 6.6 + 10;
    const available = Math.max(220, (this.matrixView.clientWidth || 420) / Math.min(count, 2) - 16);
    const cell = Math.max(8, Math.min(30, Math.floor((available - left - 8) / keys.length)));
    const width = left + cell * keys.length + 4;
    const height = top + cell * queries.length + 4;
    const figure = element('figure', {class: 'matrix', 'data-head': String(head)});
    const title = element('figcaption', {
      text: head === 'mean' ? `layer ${this.state.layer}, mean over heads` : `layer ${this.state.layer}, head ${head}`,
    });
    const rows = hasPredictions ? 'rows: decoder input (← what it predicts)' : `rows: ${FIELD_LABELS[this.data.query_field]}`;
    title.appendChild(element('span', {class: 'hint', text: ` · ${rows}; columns: ${FIELD_LABELS[this.data.key_field]}`}));
    if (count > 1) title.style.color = headColor(head);
    const svg = svgElement('svg', {width, height});
    const keyLabels = keys.map((token, k) => {
      const x = left + cell * k + cell / 2 + 4;
      const label = pieceText(token, {x, y: top - 6, transform: `rotate(-90 ${x} ${top - 6})`, class: 'axis key'});
      svg.appendChild(label);
      return label;
    });
    const queryLabels = queries.map((token, q) => {
      const y = top + cell * q + cell / 2 + 4;
      if (token.predicts) {
        svg.appendChild(pieceText(token.predicts, {x: predictsWidth - 16, y, 'text-anchor': 'end', class: 'axis predicts'}));
        svg.appendChild(svgElement('text', {x: predictsWidth - 12, y, class: 'axis arrow', text: '←'}));
      }
      const label = pieceText(token, {x: left - 6, y, 'text-anchor': 'end', class: 'axis query'});
      svg.appendChild(label);
      return label;
    });
    const cells = svgElement('g', {class: 'cells'});
    matrix.forEach((row, q) => row.forEach((weight, k) => {
      cells.appendChild(svgElement('rect', {
        x: left + cell * k, y: top + cell * q, width: cell, height: cell,
        fill: colorOf(weight / this.scaleMax), class: 'cell', 'data-q': q, 'data-k': k, 'data-weight': weight.toFixed(4),
      }));
    }));
    svg.appendChild(cells);
    const outline = svgElement('rect', {class: 'outline', x: 0, y: 0, width: 0, height: 0});
    svg.appendChild(outline);

    const setLabels = (q, k) => {
      queryLabels.forEach((label, i) => label.classList.toggle('highlight', i === q));
      keyLabels.forEach((label, i) => label.classList.toggle('highlight', i === k));
    };
    cells.addEventListener('mousemove', (event) => {
      const target = event.target;
      if (!target.classList.contains('cell')) return;
      const q = Number(target.dataset.q);
      const k = Number(target.dataset.k);
      setLabels(q, k);
      this.highlightPair?.(q, k);
      this.showTooltip(event, queries[q], keys[k], matrix[q][k], head);
    });
    cells.addEventListener('mouseleave', () => {
      setLabels(null, null);
      this.highlightPair?.(null, null);
      this.tooltip.hidden = true;
    });
    this.highlighters.push((side, index) => {
      if (side === null) {
        outline.setAttribute('width', 0);
        return;
      }
      const isQuery = side === 'query';
      outline.setAttribute('x', isQuery ? left : left + cell * index);
      outline.setAttribute('y', isQuery ? top + cell * index : top);
      outline.setAttribute('width', isQuery ? cell * keys.length : cell);
      outline.setAttribute('height', isQuery ? cell : cell * queries.length);
    });
    figure.append(title, svg);
    return figure;
  }

  showTooltip(event, query, key, weight, head) {
    const which = head === 'mean' ? 'mean over heads' : `head ${head}`;
    const predicts = query.predicts ? ` (predicting ${plain(query.predicts)})` : '';
    this.tooltip.replaceChildren(
      element('div', {class: 'value', text: weight.toFixed(3)}),
      element('div', {text: `${plain(query)}${predicts} → ${plain(key)}`}),
      element('div', {class: 'hint', text: `layer ${this.state.layer}, ${which}`}),
    );
    this.tooltip.hidden = false;
    const margin = 14;
    const {innerWidth, innerHeight} = window;
    const box = this.tooltip.getBoundingClientRect();
    const x = event.clientX + margin + box.width > innerWidth ? event.clientX - margin - box.width : event.clientX + margin;
    const y = event.clientY + margin + box.height > innerHeight ? event.clientY - margin - box.height : event.clientY + margin;
    this.tooltip.style.left = `${Math.max(0, x)}px`;
    this.tooltip.style.top = `${Math.max(0, y)}px`;
  }

  drawColorScale() {
    const stops = VIRIDIS.map((_, i) => {
      const position = i / (VIRIDIS.length - 1);
      return `${colorOf(position)} ${(100 * position).toFixed(0)}%`;
    });
    const bar = element('span', {class: 'bar'});
    bar.style.background = `linear-gradient(to right, ${stops.join(', ')})`;
    const stretch = element('input', {id: 'stretch-scale', type: 'checkbox'});
    stretch.checked = this.state.stretch;
    stretch.addEventListener('change', () => {
      this.state.stretch = stretch.checked;
      this.draw();
    });
    return element('span', {class: 'scale'}, [
      element('span', {text: 'weight 0'}), bar,
      element('span', {id: 'scale-max', text: this.scaleMax.toFixed(this.scaleMax < 0.1 ? 3 : 2)}),
      element('label', {class: 'check'}, [stretch, element('span', {text: 'stretch to the largest weight'})]),
    ]);
  }
}

// An SVG <text> for a token: a faint "·" before a piece that continues a word, a faint "␣" for
// a piece that is only a space.
function pieceText(token, attributes) {
  const text = svgElement('text', attributes);
  if (token.joins) text.appendChild(svgElement('tspan', {class: 'marker', text: '·'}));
  if (token.space) text.appendChild(svgElement('tspan', {class: 'marker', text: '␣'}));
  text.appendChild(svgElement('tspan', {text: token.text}));
  return text;
}

function plain(token) {
  return token.space ? '␣' : token.text.trim();
}
