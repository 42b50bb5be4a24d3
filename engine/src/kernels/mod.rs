//! CPU kernels: quantized formats, block dot products, linear layers, attention, and the
//! element-wise operations (SwiGLU, RoPE).

pub mod attention;
pub mod cpu;
pub mod dot;
pub mod elementwise;
pub mod linear;
pub mod quant;

pub use linear::Linear;
