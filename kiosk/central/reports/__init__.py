"""Central's reports: the daily entry list (:mod:`.daily`, written by :mod:`.export`, its words
in :mod:`.words`), a meeting's attendance with names (:mod:`.attendance`) and the list's
scheduled delivery to a folder and by mail (:mod:`.delivery`, recorded by :mod:`.deliveries`,
sent by :mod:`.mail`)."""
