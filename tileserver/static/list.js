// The slide list: one row per slide from GET /api/slides.
"use strict";

function cell(row, content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.appendChild(content); else td.textContent = content;
  row.appendChild(td);
  return td;
}

function slideRow(slide) {
  const row = document.createElement("tr");
  row.dataset.slideId = slide.id;
  const href = "/view/" + slide.id.split("/").map(encodeURIComponent).join("/");
  const thumbLink = document.createElement("a");
  thumbLink.href = href;
  const img = document.createElement("img");
  img.className = "thumb";
  img.alt = "thumbnail of " + slide.id;
  img.loading = "lazy";
  img.src = slide.urls.thumbnail + "?size=128";
  thumbLink.appendChild(img);
  cell(row, thumbLink);
  const name = document.createElement("a");
  name.href = href;
  name.textContent = slide.id;
  cell(row, name);
  cell(row, fmt.size(slide));
  cell(row, String(slide.levels.length));
  cell(row, fmt.mpp(slide));
  cell(row, fmt.codecMix(slide));
  cell(row, fmt.bytes(slide.bytes)).className = "num";
  cell(row, fmt.ratio(fmt.rawRatio(slide))).className = "num";
  cell(row, fmt.ratio(slide.ratio_vs_jpeg90)).className = "num";
  return row;
}

async function showSlides() {
  const status = document.getElementById("status");
  try {
    const response = await fetch("/api/slides");
    if (!response.ok) throw new Error("GET /api/slides: HTTP " + response.status);
    const { slides } = await response.json();
    const body = document.querySelector("#slides tbody");
    slides.forEach((slide) => body.appendChild(slideRow(slide)));
    status.textContent = slides.length ? slides.length + " slide(s)" : "no slides under the server's root";
  } catch (err) {
    status.textContent = "could not list slides: " + err.message;
    status.className = "error";
  }
}

showSlides();
