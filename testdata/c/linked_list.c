// Heap allocation through libc: build, sort and free a linked list.
#include <stdio.h>
#include <stdlib.h>

struct node {
    int value;
    struct node *next;
};

static struct node *push(struct node *head, int value) {
    struct node *n = malloc(sizeof *n);
    n->value = value;
    n->next = head;
    return n;
}

static struct node *insertion_sort(struct node *head) {
    struct node *sorted = NULL;
    while (head) {
        struct node *next = head->next, **slot = &sorted;
        while (*slot && (*slot)->value < head->value)
            slot = &(*slot)->next;
        head->next = *slot;
        *slot = head;
        head = next;
    }
    return sorted;
}

int main(void) {
    struct node *list = NULL;
    unsigned seed = 12345;
    for (int i = 0; i < 20; i++) {
        seed = seed * 1103515245 + 12345;
        list = push(list, (int)(seed >> 16) % 1000);
    }
    list = insertion_sort(list);
    int count = 0;
    while (list) {
        printf("%d ", list->value);
        struct node *next = list->next;
        free(list);
        list = next;
        count++;
    }
    putchar('\n');
    return count;
}
