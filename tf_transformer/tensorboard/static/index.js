// Attention dashboard: TensorBoard loads this ES module in an iframe whose base URL is
// data/plugin/attention/, and calls render(). Plain DOM + SVG, no build step.
//
// Views of one (run, step, probe, kind, layer):
//   - token view: query tokens (left) and key tokens (right); a line from query q to key k
//     per selected head, in the head's colour, with opacity and width set by the weight.
//     Hovering a token keeps only its lines and shades the tokens on the other side by weight.
//   - matrix view: one heatmap per selected head, rows = queries, columns = keys.

const KIND_LABELS = {
  encoder_self: 'Encoder self-attention',
  decoder_self: 'Decoder self-attention',
  cross: 'Encoder-decoder attention',
};
const FIELD_LABELS = {source_tokens: 'source', target_tokens: 'target'};
// Colour-blind-friendly categorical palette (Tableau 10).
const HEAD_COLORS = [
  '#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f',
  '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac',
];
// Lines lighter than this are invisible anyway; skipping them keeps the SVG small.
const MIN_LINE_WEIGHT = 0.01;
const SVG_NS = 'http://www.w3.org/2000/svg';

export async function render() {
  const stylesheet = document.createElement('link');
  stylesheet.rel = 'stylesheet';
  stylesheet.href = new URL('./style.css', import.meta.url).href;
  document.head.appendChild(stylesheet);
  const dashboard = new AttentionDashboard(document.body);
  await dashboard.start();
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

function svgElement(tag, attributes = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === 'text') node.textContent = value;
    else node.setAttribute(name, value);
  }
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

function labelled(label, control) {
  return element('label', {class: 'picker'}, [element('span', {text: label}), control]);
}

function setOptions(select, options, selected) {
  select.replaceChildren(
    ...options.map(({value, label}) => element('option', {value: String(value), text: label})),
  );
  const values = options.map(({value}) => String(value));
  select.value = values.includes(String(selected)) ? String(selected) : values[0] ?? '';
  return select.value;
}

class AttentionDashboard {
  constructor(root) {
    this.root = root;
    this.cache = new Map();
    this.selectedHeads = null; // null = all heads of the current data.
    this.state = {run: null, probe: null, step: null, kind: null, layer: 0};
    this.probes = [];
    this.data = null;

    this.runSelect = element('select', {id: 'run-select'});
    this.stepSelect = element('select', {id: 'step-select'});
    this.probeSelect = element('select', {id: 'probe-select'});
    this.kindSelect = element('select', {id: 'kind-select'});
    this.layerSelect = element('select', {id: 'layer-select'});
    this.headPicker = element('div', {id: 'head-picker', class: 'heads'});
    this.reloadButton = element('button', {id: 'reload', type: 'button', text: 'Reload'});
    this.status = element('div', {id: 'status', class: 'status'});
    this.caption = element('div', {id: 'caption', class: 'caption'});
    this.tokenView = element('div', {id: 'token-view', class: 'token-view'});
    this.matrixView = element('div', {id: 'matrix-view', class: 'matrix-view'});

    root.replaceChildren(
      element('div', {class: 'controls'}, [
        labelled('Run', this.runSelect),
        labelled('Step', this.stepSelect),
        labelled('Probe', this.probeSelect),
        this.reloadButton,
      ]),
      element('div', {class: 'controls'}, [
        labelled('Attention', this.kindSelect),
        labelled('Layer', this.layerSelect),
        element('div', {class: 'picker'}, [element('span', {text: 'Heads'}), this.headPicker]),
      ]),
      this.status,
      this.caption,
      element('div', {class: 'views'}, [
        element('section', {}, [element('h3', {text: 'Tokens'}), this.tokenView]),
        element('section', {}, [element('h3', {text: 'Matrix'}), this.matrixView]),
      ]),
    );

    this.runSelect.addEventListener('change', () => this.guard(() => this.selectRun(this.runSelect.value)));
    this.probeSelect.addEventListener('change', () => this.guard(() => this.selectProbe(this.probeSelect.value)));
    this.stepSelect.addEventListener('change', () => {
      this.state.step = Number(this.stepSelect.value);
      this.guard(() => this.loadAttention());
    });
    this.kindSelect.addEventListener('change', () => {
      this.state.kind = this.kindSelect.value;
      this.guard(() => this.loadAttention());
    });
    this.layerSelect.addEventListener('change', () => {
      this.state.layer = Number(this.layerSelect.value);
      this.draw();
    });
    this.reloadButton.addEventListener('click', () => {
      this.cache.clear();
      this.guard(() => this.start());
    });
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
      const runs = await fetchJson('runs');
      if (runs.length === 0) {
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
    this.state.run = run;
    this.probes = await fetchJson('probes', {run});
    const probe = setOptions(
      this.probeSelect,
      this.probes.map((p) => ({value: p.probe, label: `${p.probe}: ${p.source_tokens.join(' ')}`})),
      this.state.probe,
    );
    await this.selectProbe(probe);
  }

  async selectProbe(probe) {
    this.state.probe = probe;
    const steps = await fetchJson('steps', {run: this.state.run, probe});
    const latest = steps[steps.length - 1];
    const keepStep = steps.includes(this.state.step) ? this.state.step : latest;
    this.state.step = Number(setOptions(this.stepSelect, steps.map((s) => ({value: s, label: String(s)})), keepStep));
    const kinds = this.probes.find((p) => p.probe === probe)?.kinds ?? [];
    this.state.kind = setOptions(
      this.kindSelect,
      kinds.map((k) => ({value: k, label: KIND_LABELS[k] ?? k})),
      this.state.kind,
    );
    await this.loadAttention();
  }

  async loadAttention() {
    const {run, probe, step, kind} = this.state;
    if (!kind || Number.isNaN(step)) return;
    const key = JSON.stringify([run, probe, step, kind]);
    if (!this.cache.has(key)) {
      this.cache.set(key, await fetchJson('attention', {run, probe, step, kind}));
    }
    this.data = this.cache.get(key);
    const layers = [...Array(this.data.num_layers).keys()];
    this.state.layer = Number(setOptions(
      this.layerSelect, layers.map((l) => ({value: l, label: String(l)})), this.state.layer,
    ));
    this.buildHeadPicker();
    this.draw();
  }

  buildHeadPicker() {
    const heads = [...Array(this.data.num_heads).keys()];
    if (this.selectedHeads !== null) {
      this.selectedHeads = new Set([...this.selectedHeads].filter((h) => h < heads.length));
    }
    const selected = this.selectedHeads ?? new Set(heads);
    const boxes = heads.map((head) => {
      const box = element('input', {type: 'checkbox', value: String(head), 'data-head': String(head)});
      box.checked = selected.has(head);
      box.addEventListener('change', () => {
        this.selectedHeads = new Set(boxes.filter((b) => b.checked).map((b) => Number(b.value)));
        this.draw();
      });
      return box;
    });
    const labels = boxes.map((box, head) => {
      const swatch = element('span', {class: 'swatch'});
      swatch.style.background = headColor(head);
      return element('label', {class: 'head'}, [box, swatch, element('span', {text: String(head)})]);
    });
    const setAll = (checked) => {
      for (const box of boxes) box.checked = checked;
      this.selectedHeads = checked ? null : new Set();
      this.draw();
    };
    const all = element('button', {type: 'button', text: 'all'});
    all.addEventListener('click', () => setAll(true));
    const none = element('button', {type: 'button', text: 'none'});
    none.addEventListener('click', () => setAll(false));
    this.headPicker.replaceChildren(...labels, all, none);
  }

  heads() {
    const all = [...Array(this.data.num_heads).keys()];
    return this.selectedHeads === null ? all : all.filter((h) => this.selectedHeads.has(h));
  }

  draw() {
    if (!this.data) return;
    const data = this.data;
    const translation = data.target_tokens.slice(1).join(' ');
    this.caption.replaceChildren(
      element('span', {class: 'label', text: 'source'}),
      element('span', {class: 'sentence', text: data.source_tokens.join(' ')}),
      element('span', {class: 'label', text: 'target'}),
      element('span', {class: 'sentence', text: translation}),
      element('span', {class: 'label', text: `step ${data.step}`}),
    );
    const layerWeights = data.weights[this.state.layer]; // [N][Tq][Tk]
    const heads = this.heads();
    const highlighters = [];
    this.tokenView.replaceChildren(this.drawTokenView(layerWeights, heads, highlighters));
    this.matrixView.replaceChildren(
      ...heads.map((head) => this.drawMatrix(layerWeights[head], head, highlighters)),
    );
    if (heads.length === 0) {
      this.matrixView.replaceChildren(element('p', {text: 'Select one or more heads.'}));
    }
    this.highlighters = highlighters;
  }

  drawTokenView(layerWeights, heads, highlighters) {
    const {query_tokens: queries, key_tokens: keys} = this.data;
    const rowHeight = 22;
    const top = 28;
    const queryX = 170;
    const keyX = 430;
    const height = top + rowHeight * Math.max(queries.length, keys.length) + 8;
    const svg = svgElement('svg', {class: 'tokens', width: 600, height, 'data-kind': this.data.kind});
    svg.appendChild(svgElement('text', {
      x: queryX, y: 16, class: 'column-title', 'text-anchor': 'end',
      text: `${FIELD_LABELS[this.data.query_field]} (attends)`,
    }));
    svg.appendChild(svgElement('text', {
      x: keyX, y: 16, class: 'column-title', text: `${FIELD_LABELS[this.data.key_field]} (attended to)`,
    }));
    const rowY = (index) => top + rowHeight * index + rowHeight / 2;

    const lines = svgElement('g', {class: 'lines'});
    for (const head of heads) {
      const group = svgElement('g', {stroke: headColor(head), 'data-head': head});
      layerWeights[head].forEach((row, q) => row.forEach((weight, k) => {
        if (weight < MIN_LINE_WEIGHT) return;
        group.appendChild(svgElement('line', {
          x1: queryX + 6, y1: rowY(q), x2: keyX - 6, y2: rowY(k),
          'stroke-opacity': weight.toFixed(3), 'stroke-width': (0.5 + 3 * weight).toFixed(2),
          'data-q': q, 'data-k': k,
        }));
      }));
      lines.appendChild(group);
    }
    svg.appendChild(lines);

    const tokenGroup = (token, index, side) => {
      const x = side === 'query' ? queryX : keyX;
      const group = svgElement('g', {class: `token ${side}`, 'data-index': index});
      const background = svgElement('rect', {
        x: side === 'query' ? x - 160 : x - 2, y: rowY(index) - rowHeight / 2 + 2,
        width: 162, height: rowHeight - 4, rx: 3, class: 'token-bg',
      });
      group.appendChild(background);
      group.appendChild(svgElement('text', {
        x, y: rowY(index) + 4, 'text-anchor': side === 'query' ? 'end' : 'start', text: token,
      }));
      svg.appendChild(group);
      return {group, background};
    };
    const queryNodes = queries.map((token, q) => tokenGroup(token, q, 'query'));
    const keyNodes = keys.map((token, k) => tokenGroup(token, k, 'key'));

    // Mean weight over the selected heads, to shade the tokens on the other side.
    const meanWeight = (q, k) =>
      heads.length === 0 ? 0 : heads.reduce((sum, h) => sum + layerWeights[h][q][k], 0) / heads.length;
    const clear = () => {
      svg.classList.remove('focus');
      for (const line of svg.querySelectorAll('line.active')) line.classList.remove('active');
      for (const {group, background} of [...queryNodes, ...keyNodes]) {
        group.classList.remove('hovered');
        background.style.fillOpacity = '';
      }
      for (const highlight of this.highlighters ?? []) highlight(null);
    };
    const focus = (side, index) => {
      clear();
      svg.classList.add('focus');
      const attribute = side === 'query' ? 'data-q' : 'data-k';
      for (const line of svg.querySelectorAll(`line[${attribute}="${index}"]`)) {
        line.classList.add('active');
      }
      const own = side === 'query' ? queryNodes : keyNodes;
      own[index].group.classList.add('hovered');
      const others = side === 'query' ? keyNodes : queryNodes;
      others.forEach(({background}, other) => {
        const weight = side === 'query' ? meanWeight(index, other) : meanWeight(other, index);
        background.style.fillOpacity = Math.min(1, weight * 1.5).toFixed(3);
      });
      for (const highlight of this.highlighters ?? []) highlight(side, index);
    };
    queryNodes.forEach(({group}, q) => {
      group.addEventListener('mouseenter', () => focus('query', q));
      group.addEventListener('mouseleave', clear);
    });
    keyNodes.forEach(({group}, k) => {
      group.addEventListener('mouseenter', () => focus('key', k));
      group.addEventListener('mouseleave', clear);
    });
    return svg;
  }

  drawMatrix(weights, head, highlighters) {
    const {query_tokens: queries, key_tokens: keys} = this.data;
    const cell = Math.max(8, Math.min(22, Math.floor(360 / Math.max(queries.length, keys.length))));
    const left = 110;
    const top = 100;
    const width = left + cell * keys.length + 10;
    const height = top + cell * queries.length + 10;
    const figure = element('figure', {class: 'matrix', 'data-head': String(head)});
    const title = element('figcaption', {text: `head ${head}`});
    title.style.color = headColor(head);
    const svg = svgElement('svg', {width, height});
    keys.forEach((token, k) => {
      const x = left + cell * k + cell / 2 + 4;
      svg.appendChild(svgElement('text', {
        x, y: top - 6, transform: `rotate(-90 ${x} ${top - 6})`, class: 'axis key', text: token,
      }));
    });
    queries.forEach((token, q) => {
      svg.appendChild(svgElement('text', {
        x: left - 6, y: top + cell * q + cell / 2 + 4, 'text-anchor': 'end', class: 'axis query', text: token,
      }));
    });
    weights.forEach((row, q) => row.forEach((weight, k) => {
      const rect = svgElement('rect', {
        x: left + cell * k, y: top + cell * q, width: cell, height: cell,
        fill: headColor(head), 'fill-opacity': weight.toFixed(3), class: 'cell',
        'data-q': q, 'data-k': k,
      });
      rect.appendChild(svgElement('title', {text: `${queries[q]} → ${keys[k]}: ${weight.toFixed(3)}`}));
      svg.appendChild(rect);
    }));
    const outline = svgElement('rect', {class: 'outline', x: 0, y: 0, width: 0, height: 0});
    svg.appendChild(outline);
    highlighters.push((side, index) => {
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
}
