"""Health declarations made on the site's page (/s/<site>) and the signed document that takes
them to the gate: the answers and the subject (:mod:`.form`), the table (:mod:`.store`), the
publisher (:mod:`.publisher`)."""
