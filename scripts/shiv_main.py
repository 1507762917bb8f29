# The zipapp's __main__.py: scripts/build-zipapps puts it in place of shiv's two lines
# (`import _bootstrap; _bootstrap.bootstrap()`) and fills in BUILD_ID and ENTRY_POINT.
#
# 1. Where to unpack. shiv unpacks its site-packages into $SHIV_ROOT, else ~/.shiv, and fails
#    before any of our code runs when that is not writable (a read-only HOME in a container,
#    `nobody` with HOME=/nonexistent). With no SHIV_ROOT and no usable ~/.shiv we unpack into a
#    private directory of this user under the temp dir.
# 2. Start fast. Once this build is unpacked (and the preamble has run), a start only needs that
#    site-packages on sys.path, exactly as shiv's bootstrap puts it there; shiv's bootstrap
#    module imports compileall, hashlib, subprocess, shutil, json, typing and pathlib first
#    (about a third of a warm start). Anything else (first run, any SHIV_* option but SHIV_ROOT)
#    goes through shiv's own bootstrap, unchanged.
import os
import sys

BUILD_ID = "@BUILD_ID@"
ENTRY_POINT = "@ENTRY_POINT@"


def _fail(name, message):
    sys.exit(f"{name}: error: cannot unpack: {message}; hint: set SHIV_ROOT to a writable "
             "directory")


def _unpack_root(name):
    """The root shiv will use: $SHIV_ROOT, ~/.shiv, or a private temp dir (then exported)."""
    if os.environ.get("SHIV_ROOT"):
        return os.path.expanduser(os.environ["SHIV_ROOT"])
    default = os.path.expanduser("~/.shiv")
    if os.path.isdir(os.path.join(default, f"{name}_{BUILD_ID}", "site-packages")):
        return default  # unpacked before (also fine read-only, e.g. baked into an image)
    if os.access(default if os.path.isdir(default) else os.path.dirname(default), os.W_OK):
        return default  # the usual case, as shiv does it
    import stat
    import tempfile

    root = os.path.join(tempfile.gettempdir(), f"shiv-{os.getuid()}")
    try:
        os.mkdir(root, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        _fail(name, f"{default} is not writable and {root}: {exc.strerror}")
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        # someone else's (or a shared) directory: never import code from it
        _fail(name, f"{default} is not writable and {root} is not a private directory of "
                    "this user")
    os.environ["SHIV_ROOT"] = root
    return root


def _start_unpacked(root, name):
    """Run the entry point from an existing extraction; return only if there is none."""
    if any(key.startswith("SHIV_") and key != "SHIV_ROOT" for key in os.environ):
        return  # an option for shiv's bootstrap (force extract, interpreter, entry point, ...)
    here = os.path.join(root, f"{name}_{BUILD_ID}")
    site_packages = os.path.join(here, "site-packages")
    if not os.path.isfile(os.path.join(here, ".siblings-cleaned")):
        return  # first run of this build: shiv unpacks, our preamble tidies up
    import site

    length = len(sys.path)  # what shiv's bootstrap does: our site-packages before the others
    index = next((i for i, part in enumerate(sys.path)
                  if os.path.basename(part) in ("site-packages", "dist-packages")), length)
    site.addsitedir(site_packages)
    sys.path = sys.path[:index] + sys.path[length:] + sys.path[index:length]
    module, _, function = ENTRY_POINT.partition(":")
    main = getattr(__import__(module, fromlist=[function]), function)
    sys.exit(main())


_name = os.path.basename(os.path.realpath(sys.argv[0]))
_start_unpacked(_unpack_root(_name), _name)
import _bootstrap  # noqa: E402  (shiv's bootstrap, inside the zipapp)

_bootstrap.bootstrap()
