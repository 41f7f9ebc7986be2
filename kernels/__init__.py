"""Chapter 5: Triton kernels (fused attention, LayerNorm) with their autograd wrappers and benchmark."""
