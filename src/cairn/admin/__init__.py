"""The admin HTTP API of a node, its client, and the values both speak.

- `AdminSource` (`source`): what a node offers the API: views and actions;
- `AdminServer` (`server`): the aiohttp server a node starts on its `admin_addr`;
- `NodeAdminSource` (`node_source`): the source of a single-group node, no placement driver;
- `PlacementSource` (`placement_source`): the source over a placement driver;
- `AdminClient` (`client`): the blocking client `cairn ctl` uses;
- `views`, `health`, `metrics`, `render`: the values, how health is judged, `/metrics`,
  and the tables `cairn ctl` prints.
"""

from cairn.admin.client import AdminClient
from cairn.admin.node_source import NodeAdminSource
from cairn.admin.placement_source import PlacementSource
from cairn.admin.server import AdminServer
from cairn.admin.source import AdminError, AdminSource

__all__ = [
    "AdminClient",
    "AdminError",
    "AdminServer",
    "AdminSource",
    "NodeAdminSource",
    "PlacementSource",
]
