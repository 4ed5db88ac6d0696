// The entry points of selective_scan.cpp and mamba_inner.cpp, as bindings.cpp exposes them to Python.
#pragma once
#include <torch/extension.h>
#include <vector>

// selective_scan.cpp: the scan over (b, d, l) rows; B, C are (b, l, n) selective or (d, n) time-invariant.
std::vector<torch::Tensor> scan_fwd(torch::Tensor u, torch::Tensor dt, torch::Tensor A, torch::Tensor B,
                                    torch::Tensor C, torch::Tensor h0);
std::vector<torch::Tensor> scan_bwd(torch::Tensor u, torch::Tensor dt, torch::Tensor A, torch::Tensor B,
                                    torch::Tensor C, torch::Tensor h0, torch::Tensor gy, torch::Tensor g_last);

// mamba_inner.cpp: conv + SiLU and the gated scan in the (b, l, d) layout of the Mamba layer's projections.
torch::Tensor conv_silu_fwd(torch::Tensor x, torch::Tensor w, torch::Tensor bias);
std::vector<torch::Tensor> conv_silu_bwd(torch::Tensor x, torch::Tensor w, torch::Tensor bias, torch::Tensor gu,
                                         torch::Tensor gx);
torch::Tensor gated_scan_fwd(torch::Tensor u, torch::Tensor dt, torch::Tensor z, torch::Tensor A,
                             torch::Tensor B, torch::Tensor C, torch::Tensor D, torch::Tensor dt_bias);
std::vector<torch::Tensor> gated_scan_bwd(torch::Tensor u, torch::Tensor dt, torch::Tensor z, torch::Tensor A,
                                          torch::Tensor B, torch::Tensor C, torch::Tensor D,
                                          torch::Tensor dt_bias, torch::Tensor gy, torch::Tensor gz);
