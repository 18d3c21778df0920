use fluxor::Message;

#[derive(Message, serde::Serialize, serde::Deserialize)]
#[message(wire = "batch.v1")]
struct Batch<T: Send + 'static>(Vec<T>);

fn main() {}
