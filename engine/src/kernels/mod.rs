//! CPU kernels: quantized formats, block dot products, linear layers, attention.

pub mod attention;
pub mod dot;
pub mod linear;
pub mod quant;

pub use linear::Linear;
