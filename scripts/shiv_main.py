# The zipapp's __main__.py (scripts/build-zipapps puts it in place of shiv's two lines).
# shiv unpacks its site-packages into $SHIV_ROOT, else ~/.shiv, and fails before any of our code
# runs when that is not writable (a read-only HOME in a container, `nobody` with HOME=/nonexistent).
# So: with no SHIV_ROOT and no usable ~/.shiv, unpack into a private directory of this user
# under the temp dir, then hand over to shiv.
import os
import sys


def _choose_shiv_root():
    if os.environ.get("SHIV_ROOT"):
        return
    default = os.path.expanduser("~/.shiv")
    if os.access(default if os.path.isdir(default) else os.path.dirname(default), os.W_OK):
        return  # the usual case: ~/.shiv, as shiv does it
    import json
    import stat
    import tempfile
    import zipfile

    name = os.path.basename(os.path.realpath(sys.argv[0]))
    with zipfile.ZipFile(sys.argv[0]) as archive:
        build_id = json.loads(archive.read("environment.json").decode())["build_id"]
    if os.path.isdir(os.path.join(default, f"{name}_{build_id}", "site-packages")):
        return  # unpacked earlier (e.g. while an image was built): read-only use is fine
    root = os.path.join(tempfile.gettempdir(), f"shiv-{os.getuid()}")
    try:
        os.mkdir(root, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        sys.exit(f"{name}: error: cannot unpack: {default} is not writable and {root}: "
                 f"{exc.strerror}; hint: set SHIV_ROOT to a writable directory")
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        # someone else's (or a shared) directory: never import code from it
        sys.exit(f"{name}: error: cannot unpack: {default} is not writable and {root} is not "
                 "a private directory of this user; hint: set SHIV_ROOT to a writable directory")
    os.environ["SHIV_ROOT"] = root


_choose_shiv_root()
import _bootstrap  # noqa: E402  (shiv's bootstrap, inside the zipapp)

_bootstrap.bootstrap()
