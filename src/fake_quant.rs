//! FakeQuantize: placeholder until the fake-quant slice lands.
