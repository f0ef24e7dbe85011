"""Reads and runs an image tarball unpacked by scripts/images.sh, without a container runtime.

    python3 image_check.py inspect META TAG USER   check META (the tarball's contents:
        manifest.json, config, layers): one image tagged TAG, run as USER, linux, the OCI labels;
        prints a summary on stderr and the layer paths on stdout, in order
    python3 image_check.py run META ROOTFS [ARG...]   run the image's entrypoint with ARGs (else
        its Cmd) in ROOTFS (its layers extracted) as a runtime would: the config's Env only,
        its WorkingDir, its User. As root: chroot, then setgid/setuid. Otherwise: the image's own
        loader and libraries, from ROOTFS/WorkingDir (same Env; the user is the caller).
        The process replaces this one (exec): one process, one pid.
"""

import glob
import json
import os
import sys

LABELS = ("title", "version", "source", "licenses", "revision", "created")


def config(meta):
    manifest = json.load(open(os.path.join(meta, "manifest.json")))
    if len(manifest) != 1:
        sys.exit(f"image_check: {len(manifest)} images in manifest.json, want 1")
    m = manifest[0]
    return m, json.load(open(os.path.join(meta, m["Config"])))


def inspect(meta, tag, user):
    m, cfg = config(meta)
    c = cfg.get("config") or {}
    labels = c.get("Labels") or {}
    problems = []
    if m.get("RepoTags") != [tag]:
        problems.append(f"RepoTags {m.get('RepoTags')}, want [{tag!r}]")
    if c.get("User") != user:
        problems.append(f"User {c.get('User')!r}, want {user!r}")
    if not c.get("Entrypoint"):
        problems.append("no Entrypoint")
    if cfg.get("os") != "linux" or not cfg.get("architecture"):
        problems.append(f"os/architecture {cfg.get('os')}/{cfg.get('architecture')}")
    for k in LABELS:
        if not labels.get("org.opencontainers.image." + k):
            problems.append(f"no label org.opencontainers.image.{k}")
    if len(cfg["rootfs"]["diff_ids"]) != len(m["Layers"]):
        problems.append("rootfs.diff_ids and Layers differ in number")
    if problems:
        sys.exit(f"image_check: {tag}: " + "; ".join(problems))
    print(
        f"  {tag}: {len(m['Layers'])} layer(s), {cfg['os']}/{cfg['architecture']}, "
        f"user {c['User']}, entrypoint {c['Entrypoint']}, workdir {c.get('WorkingDir') or '/'}, "
        f"env {c.get('Env')}, version label {labels['org.opencontainers.image.version']}",
        file=sys.stderr,
    )
    for layer in m["Layers"]:
        print(os.path.join(meta, layer))


def run(meta, rootfs, args):
    _, cfg = config(meta)
    c = cfg.get("config") or {}
    argv = (c.get("Entrypoint") or []) + (args or c.get("Cmd") or [])
    env = dict(e.split("=", 1) for e in c.get("Env") or [])
    workdir = c.get("WorkingDir") or "/"
    if not argv[0].startswith("/"):
        sys.exit(f"image_check: entrypoint {argv[0]!r} is not an absolute path")
    sys.stdout.flush()
    if os.geteuid() == 0:
        uid, _, gid = (c.get("User") or "0:0").partition(":")
        os.chroot(rootfs)
        os.chdir(workdir)
        os.setgroups([])
        os.setgid(int(gid or uid))
        os.setuid(int(uid))
        os.execve(argv[0], argv, env)
    loaders = glob.glob(os.path.join(rootfs, "lib*", "ld-linux*.so.*"))
    if not loaders:
        sys.exit(f"image_check: no dynamic loader under {rootfs}/lib*")
    libdirs = sorted({os.path.dirname(p) for p in glob.glob(os.path.join(rootfs, "**", "*.so*"), recursive=True)})
    os.chdir(os.path.join(rootfs, workdir.lstrip("/")))
    loader = loaders[0]
    os.execve(loader, [loader, "--library-path", ":".join(libdirs), rootfs + argv[0]] + argv[1:], env)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "inspect":
        inspect(*sys.argv[2:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        sys.exit(__doc__)
