# python3-libtorrent as a test/benchmark peer: loopback only, no DHT/LSD/UPnP/NAT-PMP/uTP, no default plugins.
# usage: libtorrent_client.py seed|download TORRENT SAVE_DIR PORT SECONDS
# The seeder uses seed_mode (no up-front check). The downloader prints `done <seconds since add_torrent>` when it
# is complete and exits 0; it exits 3 if SECONDS pass first. Shared by tests/src/swarm.rs and bench/src/bin/transfer.rs.
import sys, time
import libtorrent as lt
mode, tpath, save, port, secs = sys.argv[1:6]
settings = {
    'listen_interfaces': '127.0.0.1:' + port,
    'outgoing_interfaces': '127.0.0.1',
    'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
    'enable_incoming_utp': False, 'enable_outgoing_utp': False,
    'min_announce_interval': 1, 'allow_multiple_connections_per_ip': True,
}
s = lt.session(settings, 0)
atp = lt.add_torrent_params()
atp.ti = lt.torrent_info(tpath)
atp.save_path = save
if mode == 'seed':
    atp.flags |= lt.torrent_flags.seed_mode
start = time.time()
h = s.add_torrent(atp)
deadline = start + float(secs)
while time.time() < deadline:
    st = h.status()
    if mode == 'download' and st.is_seeding:
        print('done %.3f' % (time.time() - start), flush=True)
        sys.exit(0)
    time.sleep(0.05)
sys.exit(0 if mode == 'seed' else 3)
