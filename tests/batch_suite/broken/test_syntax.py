def test_this_file_does_not_parse(:
    pass
