//! Counting gRPC messages in a body stream (Istio's `istio_request_messages_total` and
//! `istio_response_messages_total`): each message is a 5-byte prefix (compressed flag,
//! big-endian length) and that many bytes, split across body chunks anywhere.

/// Counts the messages of one direction as its chunks pass, without copying them.
#[derive(Debug, Default, Clone)]
pub struct MessageCounter {
    /// Prefix bytes of the current message seen so far (0..5).
    prefix_seen: usize,
    /// The length bytes of the current prefix, as they arrive.
    length: [u8; 4],
    /// Bytes of the current message's payload still to pass.
    payload_left: u64,
    /// Messages whose prefix has been seen.
    pub count: u64,
}

impl MessageCounter {
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.payload_left > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.payload_left).unwrap_or(usize::MAX));
                self.payload_left -= n as u64;
                data = &data[n..];
                continue;
            }
            // In a prefix: byte 0 is the compressed flag, bytes 1..5 the length.
            if self.prefix_seen > 0 {
                self.length[self.prefix_seen - 1] = data[0];
            }
            self.prefix_seen += 1;
            data = &data[1..];
            if self.prefix_seen == 5 {
                self.count += 1;
                self.prefix_seen = 0;
                self.payload_left = u64::from(u32::from_be_bytes(self.length));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MessageCounter;

    fn message(payload: &[u8]) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        m.extend_from_slice(payload);
        m
    }

    #[test]
    fn messages_are_counted_however_the_stream_is_cut() {
        let stream: Vec<u8> = [
            message(b"hello"),
            message(b""),
            message(&[7u8; 300]),
            message(b"x"),
        ]
        .concat();
        for chunk in [1, 2, 3, 5, 7, 64, stream.len()] {
            let mut c = MessageCounter::default();
            for part in stream.chunks(chunk) {
                c.feed(part);
            }
            assert_eq!(c.count, 4, "chunks of {chunk}");
        }
        let mut c = MessageCounter::default();
        c.feed(&stream[..3]);
        assert_eq!(c.count, 0, "a prefix not yet whole is not a message");
    }
}
