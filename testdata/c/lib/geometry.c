#include <math.h>
struct point { double x, y; };
extern int geometry_calls;

double distance(struct point a, struct point b) {
    geometry_calls++;
    double dx = a.x - b.x, dy = a.y - b.y;
    return sqrt(dx * dx + dy * dy);
}

struct point midpoint(struct point a, struct point b) {
    geometry_calls++;
    struct point m = {(a.x + b.x) / 2, (a.y + b.y) / 2};
    return m;
}
