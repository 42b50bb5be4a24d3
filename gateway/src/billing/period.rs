//! Billing periods: calendar months in UTC (kept with the store, whose budgets and invoices
//! are bounded by them).

pub use store::period::*;
