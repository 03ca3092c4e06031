int duplicated_value = 2;
