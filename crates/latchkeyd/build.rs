// `sqlx::migrate!` embeds the migrations when db.rs compiles; without this, a migration added
// without a change to db.rs would be missing from the binary until something else rebuilt it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
