// A gan-edu generator in JavaScript: its JSON card is the contract, onnxruntime runs the graph.
//
// An ES module with no imports and nothing that touches a page, so node and browser apps can both
// import it: checkCard (the card's contract, format gan-edu-card/2), checkLabel, toPixel and
// toRGBA (values to pixels, as numpy does it), randomSource and gaussianNoise (seeded noise),
// walk (between two noises) and Generator (load a card and its model, generate images).
// onnxruntime's JavaScript API cannot read an ONNX model's metadata, so everything it needs (noise
// size, classes, image shape, output kind) comes from the card beside the .onnx
// (exported/NAME.json, documented in exported/README.md; its JSON Schema is
// runtime/gan_edu_runtime/card.schema.json).
//
// Noise: gaussianNoise draws N(0, 1) with a seeded mulberry32 source and Box-Muller. It is NOT
// numpy's np.random.default_rng(seed).standard_normal: the same seed here and in Python gives
// different noise, so different images. To draw what Python draws, feed the z that Python's
// OnnxGenerator.latent(n, seed=s) returns (the demo's ?noise=URL does that).

/** The card format this module reads. */
export const CARD_FORMAT = "gan-edu-card/2";

/** The card of a shipped model, checked enough that the rest can trust it; returns the card. */
export function checkCard(card) {
  const c = card && card.contract;
  if (!c || card.format !== CARD_FORMAT) {
    throw new Error(`not a gan-edu card (format ${JSON.stringify(card && card.format)}); expected ${JSON.stringify(CARD_FORMAT)}`);
  }
  if (!Number.isInteger(c.latent_dim) || c.latent_dim <= 0 || !Array.isArray(c.image_shape) || c.image_shape.length !== 3) {
    throw new Error("card contract: expected a positive latent_dim and image_shape [C, H, W]");
  }
  if (c.output !== "float" && c.output !== "uint8") throw new Error(`card contract output ${JSON.stringify(c.output)}: expected "float" or "uint8"`);
  if (c.num_classes !== null && !(Number.isInteger(c.num_classes) && c.num_classes >= 2)) {
    throw new Error(`card contract num_classes ${JSON.stringify(c.num_classes)}: expected null or an integer >= 2`);
  }
  const names = (c.inputs || []).map((i) => i.name).join(",");
  if (names !== (c.num_classes === null ? "z" : "z,labels")) throw new Error(`card contract inputs [${names}]: expected z${c.num_classes === null ? "" : " and labels"}`);
  const noise = c.noise || {};
  if (noise.distribution !== "normal" || noise.mean !== 0 || noise.std !== 1) {
    throw new Error(`card contract noise ${JSON.stringify(c.noise)}: expected a standard normal (mean 0, std 1)`);
  }
  return card;
}

/** Refuse a label outside [0, num_classes) (the graph would read -1 as the last class). */
export function checkLabel(label, numClasses) {
  if (numClasses === null) {
    if (label !== null && label !== undefined) throw new Error(`label ${label} given to an unconditional generator: expected none`);
    return;
  }
  if (!Number.isInteger(label) || label < 0 || label >= numClasses) {
    throw new Error(`label ${label}: expected an integer label in [0, ${numClasses - 1}] (${numClasses} classes)`);
  }
}

/** A small seeded random number generator (mulberry32): the same seed gives the same noise (not numpy's). */
export function randomSource(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n noise vectors z ~ N(0, I) of size dim (Box-Muller), as one Float32Array of n * dim (not numpy's draws: see the top). */
export function gaussianNoise(n, dim, random) {
  const z = new Float32Array(n * dim);
  for (let i = 0; i < z.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - random())); // 1 - u: never log(0)
    const angle = 2 * Math.PI * random();
    z[i] = r * Math.cos(angle);
    if (i + 1 < z.length) z[i + 1] = r * Math.sin(angle);
  }
  return z;
}

/** Row by row, the point t in [0, 1] on the great circle from a to b (slerp): the norm of z stays typical. */
export function walk(a, b, t, dim) {
  const out = new Float32Array(a.length);
  for (let row = 0; row < a.length; row += dim) {
    let dot = 0, na = 0, nb = 0;
    for (let i = row; i < row + dim; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
    const omega = Math.acos(Math.min(1, Math.max(-1, dot / Math.sqrt(na * nb))));
    const s = Math.sin(omega);
    const wa = s < 1e-6 ? 1 - t : Math.sin((1 - t) * omega) / s;
    const wb = s < 1e-6 ? t : Math.sin(t * omega) / s;
    for (let i = row; i < row + dim; i++) out[i] = wa * a[i] + wb * b[i];
  }
  return out;
}

/**
 * One float output value in [-1, 1] to an 8-bit pixel, exactly as numpy's
 * ``np.clip(np.rint((x + 1) * 127.5), 0, 255)`` on float32: the arithmetic in float32
 * (Math.fround), ties rounded to even.
 */
export function toPixel(x) {
  const v = Math.fround(Math.fround(x + 1) * 127.5);
  let r = Math.round(v);
  if (r - v === 0.5) r -= r % 2; // a tie: Math.round went up; numpy's rint goes to the even one
  return Math.min(255, Math.max(0, r));
}

/** The graph's output to one RGBA picture per image: float [-1, 1] through toPixel, uint8 as it is. */
export function toRGBA(data, contract) {
  const [c, h, w] = contract.image_shape;
  const n = data.length / (c * h * w);
  const pictures = [];
  for (let k = 0; k < n; k++) {
    const rgba = new Uint8ClampedArray(h * w * 4);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const p = (y * w + x) * 4;
        for (let ch = 0; ch < 3; ch++) {
          const src = Math.min(ch, c - 1); // grey: the one channel three times
          // float output is (N, C, H, W); uint8 output is (N, H, W, C), already in [0, 255]
          const v = contract.output === "float"
            ? toPixel(data[((k * c + src) * h + y) * w + x])
            : data[((k * h + y) * w + x) * c + src];
          rgba[p + ch] = v; // Uint8ClampedArray clamps to [0, 255]
        }
        rgba[p + 3] = 255;
      }
    }
    pictures.push(rgba);
  }
  return pictures;
}

/** A loaded generator: ``await Generator.load(ort, cardUrl)``, then ``await g.generate(z, label)``. */
export class Generator {
  constructor(ort, session, card) {
    this.ort = ort;
    this.session = session;
    this.card = card;
    this.contract = card.contract;
  }

  /** From a card object (checked) and its model: a URL, a file path (node) or the model's bytes. */
  static async create(ort, card, model, options = {}) {
    checkCard(card);
    const session = await ort.InferenceSession.create(model, options);
    return new Generator(ort, session, card);
  }

  static async load(ort, cardUrl) {
    const response = await fetch(cardUrl);
    if (!response.ok) throw new Error(`${cardUrl}: ${response.status} ${response.statusText}; expected a gan-edu card`);
    const card = checkCard(await response.json());
    const modelUrl = new URL(card.file, new URL(cardUrl, globalThis.location ? globalThis.location.href : undefined)).href;
    const session = await ort.InferenceSession.create(modelUrl, { executionProviders: ["wasm"] });
    return new Generator(ort, session, card);
  }

  /** Images for noise z (Float32Array of n * latent_dim), all of class ``label``; one RGBA array each. */
  async generate(z, label) {
    const { latent_dim: dim, num_classes: k } = this.contract;
    checkLabel(label, k);
    if (!(z instanceof Float32Array) || z.length === 0 || z.length % dim !== 0) {
      throw new Error(`z of length ${z && z.length}: expected a Float32Array of n * ${dim} numbers`);
    }
    const n = z.length / dim;
    const feed = { z: new this.ort.Tensor("float32", z, [n, dim]) };
    if (k !== null) feed.labels = new this.ort.Tensor("int64", new BigInt64Array(n).fill(BigInt(label)), [n]);
    const result = await this.session.run(feed);
    return toRGBA(result.images.data, this.contract);
  }
}
