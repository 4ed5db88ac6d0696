// Loaded instead of MathJax when nbs/_site/build.py could not vendor it (no npm): math stays as TeX source.
console.warn("effnb docs: MathJax was not vendored at build time (npm unavailable); math is shown as TeX.");
