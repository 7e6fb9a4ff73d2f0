use std::rc::Rc;

use jobs::prelude::*;

#[job]
async fn report(cache: Data<Rc<String>>) {
    let _ = cache;
}

fn main() {}
