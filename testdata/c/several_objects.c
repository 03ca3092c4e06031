//# with: lib/geometry.c lib/text_utils.c
//# libs: -lm
// A program split over several objects that call each other and share data.
#include <stdio.h>

struct point { double x, y; };
double distance(struct point a, struct point b);
struct point midpoint(struct point a, struct point b);
void reverse(char *s);
extern int text_calls;
int geometry_calls;

int main(void) {
    struct point a = {1, 2}, b = {4, 6};
    printf("distance %.3f\n", distance(a, b));
    struct point m = midpoint(a, b);
    printf("midpoint %.1f %.1f\n", m.x, m.y);
    char word[] = "objects";
    reverse(word);
    printf("%s geometry_calls=%d text_calls=%d\n", word, geometry_calls, text_calls);
    return 0;
}
