//! MLLP framing (hard case B07) and the listener over real TCP connections.

mod framing;
mod listener;
