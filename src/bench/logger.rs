//! logger section of `peerdex bench` (todo).
use super::{BenchError, Plan};
pub fn run(_plan: &Plan) -> Result<(), BenchError> {
    Ok(())
}
