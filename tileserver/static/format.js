// Formatting shared by the list and viewer pages; everything comes from /api/slides.
"use strict";

const fmt = {
  /** "/api/slides/a/b.tiff": ids are paths, each segment percent-encoded. */
  apiPath(id) {
    return "/api/slides/" + id.split("/").map(encodeURIComponent).join("/");
  },
  bytes(n) {
    if (n == null) return "—";
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
    return (i === 0 ? n : n.toFixed(2)) + " " + units[i];
  },
  ratio(r) {
    return r == null ? "—" : r.toFixed(2) + "×";
  },
  /** Level-0 RGB bytes over the file size. */
  rawRatio(slide) {
    return slide.bytes ? (slide.width * slide.height * 3) / slide.bytes : null;
  },
  size(slide) {
    return slide.width + " × " + slide.height;
  },
  mpp(slide) {
    return slide.mpp ? slide.mpp[0].toFixed(3) : "—";
  },
  /** "jxl:1.0 100%" for our format, "source (aperio)" for a standard WSI. */
  codecMix(slide) {
    if (!slide.codec_mix) return "source" + (slide.vendor ? " (" + slide.vendor + ")" : "");
    const parts = Object.entries(slide.codec_mix)
      .sort((a, b) => b[1] - a[1])
      .map(([name, share]) => name + " " + (100 * share).toFixed(0) + "%");
    const glass = slide.tiles ? " + " + slide.glass_tiles + "/" + slide.tiles + " glass" : "";
    return (parts.join(", ") || "all glass") + glass;
  },
  /** An absolute URL for a server path. */
  absolute(path) {
    return new URL(path, window.location.href).href;
  },
};
