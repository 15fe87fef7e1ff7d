// The page: a grid of images of one class, a class picker, "new noise", and a slider that walks
// every image from its noise A to its noise B. All it knows of the model comes from the card.
import * as ort from "/ort/ort.wasm.min.mjs";
import { Generator, gaussianNoise, randomSource, walk } from "./gan.js";

const COLUMNS = 4, ROWS = 4, PAD = 2, SCALE = 4;
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

ort.env.wasm.wasmPaths = "/ort/";
ort.env.wasm.numThreads = 1; // no cross-origin isolation needed, and the same arithmetic on every run

const state = { generator: null, label: null, a: null, b: null, t: 0, random: null };

function say(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

/** ``url`` resolved against the page, or an error unless it is on the page's own origin (?report=, ?noise=). */
function sameOrigin(name, url) {
  const resolved = new URL(url, location.href);
  if (resolved.origin !== location.origin) throw new Error(`${name}=${url}: expected a path on this page's own origin (${location.origin})`);
  return resolved.href;
}

/** Tells a test driver what the page did, when it asked (?report=PATH): the page posts it back. */
async function report(entry) {
  if (!params.has("report")) return;
  await fetch(sameOrigin("report", params.get("report")), { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(entry) });
}

function gridBase64() {
  const canvas = $("grid");
  const bytes = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

/** Draws the images at their own size; CSS enlarges the canvas, so its pixels are the model's. */
async function draw() {
  const { generator, label } = state;
  const [, h, w] = generator.contract.image_shape;
  const z = walk(state.a, state.b, state.t, generator.contract.latent_dim);
  const pictures = await generator.generate(z, label);
  const canvas = $("grid");
  canvas.width = PAD + COLUMNS * (w + PAD);
  canvas.height = PAD + ROWS * (h + PAD);
  canvas.style.width = `${canvas.width * SCALE}px`;
  canvas.style.height = `${canvas.height * SCALE}px`;
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff";
  context.fillRect(0, 0, canvas.width, canvas.height);
  pictures.forEach((rgba, i) => {
    const x = PAD + (i % COLUMNS) * (w + PAD), y = PAD + Math.floor(i / COLUMNS) * (h + PAD);
    context.putImageData(new ImageData(rgba, w, h), x, y);
  });
  const names = generator.contract.class_names;
  say(`${pictures.length} images of ${label === null ? "the model" : `class ${label} (${names[label] ?? label})`}, walk ${state.t.toFixed(2)}`);
}

function newNoise() {
  const n = COLUMNS * ROWS, dim = state.generator.contract.latent_dim;
  state.a = gaussianNoise(n, dim, state.random);
  state.b = gaussianNoise(n, dim, state.random);
}

async function loadFixedNoise(url) {
  // A test's noise: {"z": [[...latent_dim numbers...], ... 16 rows]}; the walk starts and stays at it.
  const rows = (await (await fetch(sameOrigin("noise", url))).json()).z;
  state.a = Float32Array.from(rows.flat());
  state.b = state.a;
}

async function main() {
  const model = params.get("model") || "shapes_cdcgan";
  if (!/^[A-Za-z0-9_-]+$/.test(model)) throw new Error(`model ${JSON.stringify(model)}: expected a name of letters, digits, _ and -`);
  $("model-name").textContent = model;
  state.generator = await Generator.load(ort, `/exported/${model}.json`);
  const { card, contract } = state.generator;
  $("what").textContent = card.what;
  const m = card.metrics || {}, t = card.training || {}, d = card.training_data || {};
  $("facts").textContent = `Trained on ${d.name} (${d.size} images; licence: ${d.licence}) for ${t.steps} steps on ${t.hardware}. ` +
    `c ${m.c_accuracy}, c' ${m.c_prime_accuracy}, GAN-test ${m.gan_test_accuracy}, Fréchet ${Number(m.frechet_distance).toFixed(3)}.`;

  const picker = $("class-picker");
  (contract.num_classes === null ? [] : contract.class_names).forEach((name, k) => picker.add(new Option(`${k}: ${name}`, String(k))));
  picker.disabled = contract.num_classes === null;
  const asked = params.get("label") ?? "0";
  if (contract.num_classes !== null && !/^-?[0-9]+$/.test(asked)) {
    throw new Error(`label ${asked}: expected an integer label in [0, ${contract.num_classes - 1}] (${contract.num_classes} classes)`);
  }
  state.label = contract.num_classes === null ? null : Number(asked);
  if (state.label !== null && Number.isInteger(state.label) && state.label >= 0 && state.label < contract.num_classes) picker.value = String(state.label);

  state.random = randomSource(Number(params.get("seed") ?? Date.now() % 2 ** 32));
  if (params.has("noise")) await loadFixedNoise(params.get("noise"));
  else newNoise();

  picker.addEventListener("change", () => run(async () => {
    state.label = Number(picker.value);
    await draw();
    await report({ step: "class changed", label: state.label, width: $("grid").width, height: $("grid").height, rgba: gridBase64() });
  }));
  $("new-noise").addEventListener("click", () => run(async () => { newNoise(); await draw(); }));
  $("walk").addEventListener("input", (event) => run(async () => {
    state.t = Number(event.target.value) / 100;
    $("walk-value").textContent = state.t.toFixed(2);
    await draw();
  }));

  await draw(); // refuses a label out of range (?label=-1) with one line
  await report({ step: "first", label: state.label, width: $("grid").width, height: $("grid").height, rgba: gridBase64() });
  if (params.has("report") && contract.num_classes !== null) {
    // A test driver asked: change the class through the picker, as a person would.
    picker.value = String((state.label + 1) % contract.num_classes);
    picker.dispatchEvent(new Event("change"));
  }
}

async function run(action) {
  try {
    await action();
  } catch (error) {
    say(String(error.message || error), true);
    if (!state.generator) {  // nothing loaded: no "Loading..." left beside the error, no live controls
      $("what").textContent = "No model loaded.";
      for (const id of ["class-picker", "new-noise", "walk"]) $(id).disabled = true;
    }
    const page = state.generator ? {} : { what: $("what").textContent, disabled: ["class-picker", "new-noise", "walk"].every((id) => $(id).disabled) };
    if (params.has("report") && !String(error.message).includes("report=")) await report({ step: "error", message: String(error.message || error), ...page });
  }
}

run(main);
