#!/usr/bin/env -S rjitlink run
// A script with an error on line 4: the compiler must name the script and that line.
int main(void) {
    return undeclared_in_script;
}
