//! Pharmacy pages: stock, requisitions and transfers, shortages, VBP progress.

use super::*;

pub fn add_templates(_env: &mut Environment<'static>) {}

pub fn routes() -> Router<AppState> {
    Router::new()
}
