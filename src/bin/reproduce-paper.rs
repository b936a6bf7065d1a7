//! `reproduce-paper`: the paper's tables, measured vs expected. Not implemented yet: the training
//! path and the experiments land in later issues (see the README's roadmap).
fn main() {
    eprintln!(
        "reproduce-paper: not yet implemented: the training path and the paper's experiments are still open issues; \
         the reference estimators are available through `synergy estimate ...`"
    );
    std::process::exit(2);
}
