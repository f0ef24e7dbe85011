//! Network namespaces for partition tests. Every node runs in a namespace of its own, all
//! joined by veth pairs to a bridge that lives in another namespace, and the test's clients run
//! in a fifth one (a thread of the test moved there with setns(2)). Nothing is added to the
//! machine's own namespace: no address, bridge or route. Cutting a node's bridge port
//! partitions it from everyone; bringing it up heals. Addresses are 10.213.0.N/24 inside the
//! namespaces (node N, client 100), private to them. Needs root; the namespaces are deleted on
//! drop, which also removes their links.

use std::process::Command;

/// Address of node `id` inside the namespaces.
pub fn node_ip(id: usize) -> String {
    format!("10.213.0.{id}")
}

/// A set of namespaces: `{prefix}-br` (the bridge), `{prefix}-c` (clients), `{prefix}-n{id}`.
pub struct Net {
    prefix: String,
    nodes: usize,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip(8)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl Net {
    /// Creates the namespaces for `nodes` nodes and a client, wired to one bridge.
    pub fn create(nodes: usize) -> Net {
        assert!(
            rustix::process::geteuid().is_root(),
            "the network-partition test needs root to create network namespaces"
        );
        // Unique per Net: tests of one binary run in parallel, each with its own namespaces.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let net = Net { prefix: format!("slt{}n{n}", std::process::id()), nodes };
        let br = net.bridge_ns();
        ip(&["netns", "add", &br]);
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &br, "link", "set", "br0", "up"]);
        let mut members: Vec<(String, String)> =
            (1..=nodes).map(|id| (net.node_ns(id), node_ip(id))).collect();
        members.push((net.client_ns(), "10.213.0.100".into()));
        for (i, (ns, addr)) in members.iter().enumerate() {
            ip(&["netns", "add", ns]);
            let port = format!("p{i}");
            ip(&[
                "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                ns,
            ]);
            ip(&["-n", &br, "link", "set", &port, "master", "br0", "up"]);
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        net
    }

    fn bridge_ns(&self) -> String {
        format!("{}-br", self.prefix)
    }

    pub fn client_ns(&self) -> String {
        format!("{}-c", self.prefix)
    }

    pub fn node_ns(&self, id: usize) -> String {
        format!("{}-n{id}", self.prefix)
    }

    /// Connects (`up`) or cuts node `id` from the bridge.
    pub fn link(&self, id: usize, up: bool) {
        let port = format!("p{}", id - 1);
        ip(&["-n", &self.bridge_ns(), "link", "set", &port, if up { "up" } else { "down" }]);
    }

    /// Runs `f` on a thread inside the client namespace (sockets it and the threads it starts
    /// open live there) and returns its result; a panic in `f` fails the caller.
    pub fn client<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.run_in(&self.client_ns(), f)
    }

    /// [`Net::client`] in namespace `ns` (a node's own, to reach it while it is cut off).
    pub fn run_in<T: Send>(&self, ns: &str, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{ns}");
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = std::fs::File::open(&path).expect("the namespace");
                rustix::thread::move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&ns),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .expect("setns into the namespace");
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let mut all = vec![self.bridge_ns(), self.client_ns()];
        all.extend((1..=self.nodes).map(|id| self.node_ns(id)));
        for ns in all {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}
