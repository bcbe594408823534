"""Who uWSGI runs as: the spec's user and group, by name or by number."""

from __future__ import annotations

import dataclasses
import grp
import os
import pwd

from conftest import require
from fakes import make_spec

from supervisor.uwsgi.runtime import drop_privileges


def test_named_and_numeric_users_and_groups_resolve_alike() -> None:
    require(os.geteuid() == 0, "uWSGI drops privileges only when the supervisor runs as root")
    try:
        www = pwd.getpwnam("www-data")
        nogroup = grp.getgrnam("nogroup")
    except KeyError:
        require(False, "needs Debian's www-data user and nogroup group")
        return
    by_name = dataclasses.replace(make_spec(), user="www-data", group="nogroup")
    by_number = dataclasses.replace(make_spec(), user=str(www.pw_uid), group=str(nogroup.gr_gid))
    expected = {
        "user": www.pw_uid,
        "group": nogroup.gr_gid,
        "extra_groups": os.getgrouplist("www-data", nogroup.gr_gid),
    }
    assert drop_privileges(by_name) == expected
    assert drop_privileges(by_number) == expected
    assert 0 not in expected["extra_groups"]
    only_user = dataclasses.replace(make_spec(), user=str(www.pw_uid))
    assert drop_privileges(only_user)["group"] == www.pw_gid


def test_no_user_or_no_root_means_no_change() -> None:
    """Only a root supervisor with a spec user changes who uWSGI runs as."""
    named = dataclasses.replace(make_spec(), user="root", group="root")
    assert drop_privileges(make_spec(), euid=0) == {}  # no user in the spec
    assert drop_privileges(named, euid=1000) == {}  # not root: nothing to drop
    assert drop_privileges(named, euid=0)["user"] == 0  # root, with a user: applied
