//! The control stream's UDP socket, seen by ENet only through a filter: datagrams
//! from any address but the launching client's are dropped before ENet reads them.
//!
//! ENet allocates a peer slot for every CONNECT it parses, before the connect data
//! is checked; a stranger spraying CONNECTs would otherwise fill the slots and stop
//! the real client's stream from connecting.

use std::io::{self, ErrorKind};
use std::net::{IpAddr, SocketAddr, UdpSocket};

use rusty_enet::{MTU_MAX, PacketReceived, Socket, SocketOptions};

/// A UDP socket that hands ENet only the datagrams of one client address.
#[derive(Debug)]
pub struct ClientOnlySocket {
    socket: UdpSocket,
    client: IpAddr,
    dropped: u64,
}

impl ClientOnlySocket {
    /// Wraps `socket`, admitting `client` only.
    pub fn new(socket: UdpSocket, client: IpAddr) -> Self {
        Self {
            socket,
            client: client.to_canonical(),
            dropped: 0,
        }
    }

    /// Takes the count of datagrams dropped since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

impl Socket for ClientOnlySocket {
    type Address = SocketAddr;
    type Error = io::Error;

    fn init(&mut self, _options: SocketOptions) -> io::Result<()> {
        self.socket.set_nonblocking(true)
    }

    fn send(&mut self, address: SocketAddr, buffer: &[u8]) -> io::Result<usize> {
        match self.socket.send_to(buffer, address) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn receive(
        &mut self,
        buffer: &mut [u8; MTU_MAX],
    ) -> io::Result<Option<(SocketAddr, PacketReceived)>> {
        loop {
            match self.socket.recv_from(buffer) {
                Ok((n, from)) if from.ip().to_canonical() == self.client => {
                    return Ok(Some((from, PacketReceived::Complete(n))));
                }
                Ok(_) => self.dropped += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                // ICMP errors from an earlier send surface here; they are no reason
                // to stop serving the client.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_clients_datagrams_reach_enet() {
        let host = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = host.local_addr().unwrap();
        let mut filtered = ClientOnlySocket::new(host, "127.0.0.1".parse().unwrap());
        filtered
            .init(SocketOptions {
                receive_buffer: 0,
                send_buffer: 0,
            })
            .unwrap();
        // A stranger at another loopback address, then the client.
        let stranger = UdpSocket::bind("127.0.0.2:0");
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        if let Ok(s) = &stranger {
            s.send_to(b"stranger", addr).unwrap();
        }
        client.send_to(b"client", addr).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut buf = [0u8; MTU_MAX];
        let (from, PacketReceived::Complete(n)) = filtered.receive(&mut buf).unwrap().unwrap()
        else {
            panic!("partial packet");
        };
        assert_eq!(
            (&buf[..n], from),
            (&b"client"[..], client.local_addr().unwrap())
        );
        assert!(filtered.receive(&mut buf).unwrap().is_none());
        assert_eq!(filtered.take_dropped(), u64::from(stranger.is_ok()));
    }
}
