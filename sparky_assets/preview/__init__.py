"""The build preview: one web page that shows a project's last build.

* :mod:`.document` turns what a build leaves behind (the ``sheets`` outputs, the
  generated store, the manifest's palettes) plus its :class:`BuildReport` into one
  JSON-ready *preview document*, and diffs two documents into an update.
* :mod:`.site` writes the page as static files (``build --report``): the package's
  ``static/`` files plus ``data.js`` holding the document, so it opens from disk.
* :mod:`.server` serves the same page from loopback (``preview``, ``watch --preview``)
  and pushes documents over Server-Sent Events; it also takes reroll requests.

The page itself (``static/``) never fetches anything: every image is inlined in the
document as a ``data:`` URI and the scripts ship in the wheel.
"""
