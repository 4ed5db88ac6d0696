// The Python module of effnb's native kernels (what load_inline's `functions=` generated before).
#include "kernels.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("scan_fwd", torch::wrap_pybind_function(scan_fwd), "scan_fwd");
  m.def("scan_bwd", torch::wrap_pybind_function(scan_bwd), "scan_bwd");
  m.def("conv_silu_fwd", torch::wrap_pybind_function(conv_silu_fwd), "conv_silu_fwd");
  m.def("conv_silu_bwd", torch::wrap_pybind_function(conv_silu_bwd), "conv_silu_bwd");
  m.def("gated_scan_fwd", torch::wrap_pybind_function(gated_scan_fwd), "gated_scan_fwd");
  m.def("gated_scan_bwd", torch::wrap_pybind_function(gated_scan_bwd), "gated_scan_bwd");
}
