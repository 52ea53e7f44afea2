// The viewer page: OpenSeadragon over the slide's IIIF 3.0 info.json, with navigator,
// scale bar (from mpp) and the IIIF URLs to copy into other clients.
"use strict";

function fact(list, term, value) {
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  list.append(dt, dd);
}

function copyButton(buttonId, inputId) {
  const button = document.getElementById(buttonId);
  const input = document.getElementById(inputId);
  button.addEventListener("click", async () => {
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
      button.textContent = "copied";
    } catch (err) {
      button.textContent = "press Ctrl+C";
    }
  });
}

async function openViewer() {
  const main = document.getElementById("view");
  const status = document.getElementById("status");
  const response = await fetch(fmt.apiPath(main.dataset.slideId));
  if (!response.ok) throw new Error("slide metadata: HTTP " + response.status);
  const slide = await response.json();

  const facts = document.getElementById("facts");
  fact(facts, "size", fmt.size(slide) + " px");
  fact(facts, "levels", String(slide.levels.length));
  fact(facts, "µm/px", fmt.mpp(slide));
  fact(facts, "codec mix", fmt.codecMix(slide));
  fact(facts, "file", fmt.bytes(slide.bytes));
  fact(facts, "vs raw RGB", fmt.ratio(fmt.rawRatio(slide)));
  fact(facts, "vs JPEG q90", fmt.ratio(slide.ratio_vs_jpeg90));
  document.getElementById("iiif-url").value = fmt.absolute(slide.urls.iiif3);
  document.getElementById("iiif2-url").value = fmt.absolute(slide.urls.iiif2);
  copyButton("copy-iiif", "iiif-url");
  copyButton("copy-iiif2", "iiif2-url");
  document.getElementById("qupath-url").value = fmt.absolute(slide.urls.qupath);
  copyButton("copy-qupath", "qupath-url");

  const viewer = OpenSeadragon({
    id: "viewer",
    prefixUrl: "/static/vendor/openseadragon/images/",
    tileSources: slide.urls.iiif3,
    drawer: "canvas",
    showNavigator: true,
    navigatorPosition: "TOP_RIGHT",
    maxZoomPixelRatio: 2,
    visibilityRatio: 0.5,
  });
  window.viewer = viewer; // for scripts and tests driving the page
  if (slide.mpp) addScaleBar(viewer, slide.mpp[0]);
  viewer.addHandler("open", () => { status.textContent = ""; });
  viewer.addHandler("open-failed", (event) => {
    status.textContent = "could not open the slide: " + event.message;
    status.className = "error";
  });
}

openViewer().catch((err) => {
  const status = document.getElementById("status");
  status.textContent = err.message;
  status.className = "error";
});
